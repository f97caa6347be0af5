"""Fault injection through the real CLI (issue #16): bad inputs, read-only and full disks, kill -9.

Every failing command must end in one ``error:`` line and exit 1, keep every file it was asked to
replace, leave no temp file (``.tmp*``) and no half-written result. Read-only and full places are real
tmpfs mounts (root only; skipped with the reason where ``mount`` is refused).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, error_line, run_module
from support.faults import fill, mount_tmpfs, temps

from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.files import atomic
from pwcflow.tf1 import IS_TF1

TINY_TRAIN = ["model=sm-6-2", "dataset.train_size=8", "dataset.val_size=2", "dataset.size=[64,128]",
              "train.crop=[64,128]", "train.batch_size=1", "train.display_interval=1", "train.val_pairs=2",
              "train.train_eval_pairs=1", "train.image_interval=1000"]
TINY_EVAL = ["model=sm-6-2", "dataset=synthetic", "dataset.val_size=2", "dataset.size=[64,128]", "progress=false",
             "sheet_pairs=1", "workers=1"]


@pytest.fixture
def nearly_full_dir(tmp_path):
    """A 64 KiB tmpfs with about 8 KiB left: small files fit, pictures do not."""
    d = mount_tmpfs(tmp_path / "nfull", "size=64k")
    fill(d, 8192)
    yield d
    subprocess.run(["umount", str(d)])


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    img = np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    flowio.write_image(str(d / "a.png"), img)
    flowio.write_image(str(d / "b.png"), np.roll(img, 1, axis=1))
    return d


@pytest.fixture
def ckpt(ref_dir):
    return ref_dir / "sm" / "pwcnet.ckpt"


@pytest.fixture
def truncated(ref_dir, tmp_path):
    """A copy of the sm checkpoint whose ``.data`` file lost its second half."""
    d = tmp_path / "trunc"
    d.mkdir()
    for f in (ref_dir / "sm").glob("pwcnet.ckpt.*"):
        shutil.copy(str(f), str(d / f.name))
    data = d / "pwcnet.ckpt.data-00000-of-00001"
    with open(str(data), "r+b") as fh:
        fh.truncate(data.stat().st_size // 2)
    return d / "pwcnet.ckpt"


def refused(proc, *needles) -> str:
    """One ``error:`` line, exit 1, no traceback; it mentions every needle."""
    line = error_line(proc)
    for needle in needles:
        assert str(needle) in line, line
    return line


# -- the helpers themselves (no CLI) ---------------------------------------------------------------------


def test_number_names_the_key():
    from pwcflow.config.commands import number

    assert number("3", "k") == 3 and number(2.0, "k") == 2 and number(None, "k", optional=True) is None
    for bad, kind in (("abc", int), (1.5, int), (True, int), ("nan", float), ([1], float)):
        with pytest.raises(UserError, match="bad setting k="):
            number(bad, "k", kind)
    with pytest.raises(UserError, match="must be > 0"):
        number(0, "k", float, 0.0, low_open=True)


# -- predict -----------------------------------------------------------------------------------------------


def predict(tmp_path, ckpt, frames, *overrides):
    return run_module("pwcflow.predict", "model=sm-6-2", "ckpt=%s" % ckpt, "img1=%s" % (frames / "a.png"),
                      "img2=%s" % (frames / "b.png"), *overrides, cwd=tmp_path)


def test_predict_truncated_checkpoint(truncated, frames, tmp_path):
    out = tmp_path / "f.flo"
    refused(predict(tmp_path, truncated, frames, "out=%s" % out), "checkpoint")
    assert not out.exists()


# read-only, full and nearly full places for every command: test_hostile_catalogue.py
@pytest.mark.parametrize("where", ["folder", "png", "viz_ext"])
def test_predict_bad_outputs_keep_the_old_file(where, ckpt, frames, tmp_path):
    old = tmp_path / "old.flo"
    old.write_bytes(b"old bytes")
    out, viz = old, None
    if where == "folder":
        out = tmp_path / "adir"
        out.mkdir()
    elif where == "png":
        out = tmp_path / "flow.png"
    else:
        viz = tmp_path / "f.xyz"
    args = ["out=%s" % out] + (["viz=%s" % viz] if viz else [])
    line = refused(predict(tmp_path, ckpt, frames, *args))
    assert str(viz or out) in line
    assert old.read_bytes() == b"old bytes"
    assert not (where == "png" and out.exists())
    assert not temps(tmp_path)


def test_predict_non_numeric(ckpt, frames, tmp_path):
    refused(predict(tmp_path, ckpt, frames, "out=%s" % (tmp_path / "f.flo"), "max_flow=abc"), "max_flow")


# -- eval --------------------------------------------------------------------------------------------------


def evaluate(tmp_path, ckpt, *overrides):
    return run_module("pwcflow.eval", *TINY_EVAL, "ckpt=%s" % ckpt, *overrides, cwd=tmp_path)


def test_eval_writes_a_complete_result_folder(ckpt, tmp_path):
    out = tmp_path / "res"
    proc = evaluate(tmp_path, ckpt, "out=%s" % out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert {"metrics.json", "metrics.md", "contact_sheet.png", "index.html"} <= set(os.listdir(str(out)))
    assert not temps(tmp_path)


def test_eval_out_is_a_file(ckpt, tmp_path):
    out = tmp_path / "afile"
    out.write_text("keep")
    refused(evaluate(tmp_path, ckpt, "out=%s" % out), out)
    assert out.read_text() == "keep" and not temps(tmp_path)


@pytest.mark.parametrize("override,key", [("batch=abc", "batch"), ("sheet_pairs=x", "sheet_pairs")])
def test_eval_non_numeric(override, key, ckpt, tmp_path):
    refused(evaluate(tmp_path, ckpt, "out=%s" % (tmp_path / "r"), override), key)
    assert not (tmp_path / "r").exists() and not (tmp_path / "outputs").exists()


def test_eval_truncated_checkpoint(truncated, tmp_path):
    refused(evaluate(tmp_path, truncated, "out=%s" % (tmp_path / "r")), "checkpoint")
    assert not (tmp_path / "r").exists()


# -- export ------------------------------------------------------------------------------------------------


def export(tmp_path, ckpt, *overrides):
    return run_module("pwcflow.export", "model=sm-6-2", "ckpt=%s" % ckpt, "height=64", "width=64", *overrides,
                      cwd=tmp_path)


def test_export_out_is_a_file(ckpt, tmp_path):
    out = tmp_path / "afile"
    out.write_text("keep")
    refused(export(tmp_path, ckpt, "out=%s" % out), out)
    assert out.read_text() == "keep" and not temps(tmp_path)


@pytest.mark.parametrize("override,key", [("height=abc", "height"), ("batch=1.5x", "batch")])
def test_export_non_numeric(override, key, ckpt, tmp_path):
    refused(export(tmp_path, ckpt, "out=%s" % (tmp_path / "x"), override), key)
    assert not (tmp_path / "outputs").exists()


def test_export_truncated_checkpoint(truncated, tmp_path):
    refused(export(tmp_path, truncated, "out=%s" % (tmp_path / "x")), "checkpoint")


def staged(folder: Path, pid: int) -> list:
    """What process ``pid`` is staging in ``folder`` right now: its ``.tmp-<pid>-*`` entries (files/atomic.py)."""
    tag = "%s%d-" % (atomic.TMP_PREFIX, pid)
    try:
        return [folder / n for n in os.listdir(str(folder)) if n.startswith(tag)]
    except FileNotFoundError:
        return []


def _frozen(proc) -> None:
    """SIGSTOP ``proc`` and wait until the kernel reports it stopped (state T), so what is on disk holds still."""
    proc.send_signal(signal.SIGSTOP)
    stat, until = "/proc/%d/stat" % proc.pid, time.time() + 1.0
    while time.time() < until:
        try:
            with open(stat) as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X"):
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.0002)


def kill_while_writing(cmd, cwd, seed: int, folders, moments: int = 1, spread: float = 0.0) -> list:
    """Run ``python -m cmd`` and kill -9 it while it stages outputs in one of ``folders``; return what it left.

    Each new staging entry (``.tmp-<pid>-*``) is a moment to strike; the seed picks one of the first ``moments``
    and a delay of 0..``spread`` s after it. The process is sampled frozen: every few milliseconds it is stopped
    (SIGSTOP, waited for), the folders are listed, and it is killed only if a staging entry is there at that
    frozen instant (else it goes on): the kill lands while it writes, however short-lived its temps are (a scan
    of the running process missed them on a fast CPU). Returns the staging entries left behind by the kill,
    ``[]`` when the process finished first.
    """
    rng = random.Random(seed)
    nth, delay = rng.randint(1, moments), rng.uniform(0.0, spread)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m"] + cmd, cwd=str(cwd), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen, deadline = set(), time.time() + 300
    try:
        while proc.poll() is None and time.time() < deadline:
            seen.update(p for f in folders for p in staged(Path(f), proc.pid))  # moments, counted while it runs
            _frozen(proc)
            left = [p for f in folders for p in staged(Path(f), proc.pid)]
            seen.update(left)
            if left and len(seen) >= nth and not delay:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return [p for p in left if os.path.lexists(str(p))]
            proc.send_signal(signal.SIGCONT)
            if left and len(seen) >= nth:  # the moment came: strike ``delay`` s into it
                time.sleep(delay)
                delay = 0.0
            time.sleep(0.002)
        return []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def assert_killed_mid_write(left) -> None:
    """The kill froze the command with outputs half-staged: its ``.tmp-<pid>-*`` entries are still there."""
    assert left, "kill -9 did not land while outputs were being written (the command finished first)"


# every format this leg exports without a GPU (TF 1.15's TFLite cannot: test_formats.py)
EXPORTS = [("pb", ".pb"), ("savedmodel", "_savedmodel"), ("onnx", ".onnx")] + [("tflite", ".tflite")] * (not IS_TF1)


@pytest.mark.slow
@pytest.mark.parametrize("fmt,suffix", EXPORTS, ids=[f for f, _ in EXPORTS])
def test_export_kill9_then_rerun(fmt, suffix, ckpt, tmp_path):
    """Killed inside ``out/`` while the export is written and checked: no result, no sidecar; a rerun cleans up."""
    out = tmp_path / "x"
    stem = "pwcnet_sm-6-2_1x64x64"
    args = ["model=sm-6-2", "ckpt=%s" % ckpt, "height=64", "width=64", "format=" + fmt, "out=%s" % out]
    left = kill_while_writing(["pwcflow.export"] + args, tmp_path, len(fmt), [out], spread=0.3)
    assert_killed_mid_write(left)
    assert all(p.parent == out for p in left)
    assert not (out / (stem + suffix)).exists() and not list(out.glob("*.json"))
    proc = export(tmp_path, ckpt, "format=" + fmt, "out=%s" % out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(os.listdir(str(out))) == sorted([stem + suffix, stem + suffix + ".json"])  # <file>.json (#27)
    assert not temps(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [4, 5])
def test_eval_kill9_then_rerun(seed, ckpt, tmp_path):
    """Killed while the result folder is staged (a sibling ``.tmp-<pid>-res``): no result folder; a rerun makes it."""
    out = tmp_path / "res"
    left = kill_while_writing(["pwcflow.eval"] + TINY_EVAL + ["ckpt=%s" % ckpt, "out=%s" % out], tmp_path, seed,
                              [tmp_path], spread=0.2)
    assert_killed_mid_write(left)
    assert not out.exists()
    proc = evaluate(tmp_path, ckpt, "out=%s" % out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "metrics.json").exists() and (out / "contact_sheet.png").exists() and not temps(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["export-" + fmt for fmt, _ in EXPORTS] + ["eval"])
def test_rerun_after_a_completed_run(command, ckpt, tmp_path):
    """The other side of the kill tests: a run that completed is kept whole, and a rerun behaves as documented."""
    if command == "eval":
        out = tmp_path / "res"
        first = evaluate(tmp_path, ckpt, "out=%s" % out)
        assert first.returncode == 0, first.stderr[-3000:]
        before = json.loads((out / "metrics.json").read_text())
        again = evaluate(tmp_path, ckpt, "out=%s" % out)
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads((out / "metrics.json").read_text())["epe"] == before["epe"]
        assert (out / "contact_sheet.png").exists() and not temps(tmp_path)
        return
    fmt = command.split("-")[1]
    out = tmp_path / "x"
    assert export(tmp_path, ckpt, "format=" + fmt, "out=%s" % out).returncode == 0
    names = sorted(os.listdir(str(out)))
    stamps = {n: (out / n).stat().st_mtime_ns for n in names}
    proc = export(tmp_path, ckpt, "format=" + fmt, "out=%s" % out)
    # every format (the SavedModel folder too, #27) is replaced whole
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert all((out / n).stat().st_mtime_ns != stamps[n] for n in names)
    assert sorted(os.listdir(str(out))) == names and not temps(tmp_path)


# -- predict on a sequence ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [8, 9])
def test_predict_sequence_kill9_then_rerun(seed, ckpt, tmp_path):
    """Killed while a flow, picture or the video is staged: every flow file there is whole; a rerun finishes."""
    frames_dir = tmp_path / "in"
    frames_dir.mkdir()
    rng = np.random.RandomState(seed)
    img = rng.randint(0, 255, (240, 320, 3), dtype=np.uint8)  # outputs big enough to be caught while staged
    for i in range(30):  # many staging moments: under load the poller can miss a short-lived temp
        flowio.write_image(str(frames_dir / ("frame_%04d.png" % i)), np.roll(img, i, axis=1))
    out = tmp_path / "seq"
    args = ["model=sm-6-2", "ckpt=%s" % ckpt, "input=%s" % frames_dir, "out=%s" % out, "viz=true", "video=true",
            "progress=false"]
    left = kill_while_writing(["pwcflow.predict"] + args, tmp_path, seed, [out, out / "viz"], moments=6)
    assert_killed_mid_write(left)
    done = sorted(out.glob("*.flo"))
    assert len(done) < 29 or not (out / "flow.mp4").exists()  # killed before the end
    for f in done:  # atomic: each flow file is complete
        assert flowio.read_flo(str(f)).shape == (240, 320, 2)
    proc = run_module("pwcflow.predict", *args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(out.glob("*.flo"))) == 29 and len(list((out / "viz").glob("*.png"))) == 29
    assert (out / "flow.mp4").stat().st_size > 0 and not temps(tmp_path)


# -- train -------------------------------------------------------------------------------------------------


def train(tmp_path, *overrides, timeout=300):
    return run_module("pwcflow.train", *TINY_TRAIN, *overrides, cwd=tmp_path, timeout=timeout)


@pytest.mark.parametrize("override,key", [
    ("train.batch_size=abc", "train.batch_size"),
    ("train.iterations=1e", "train.iterations"),
    ("lr_schedule.rates=[1e-4,-1e-4,1e-5,1e-5,1e-5,1e-5]", "lr_schedule.rates"),
    ("lr_schedule.rates=[1e-4,abc,1e-5,1e-5,1e-5,1e-5]", "lr_schedule.rates"),
    ("lr_schedule=cyclic lr_schedule.base_lr=-1e-5", "lr_schedule.base_lr"),
    ("lr_schedule=cyclic lr_schedule.max_lr=0", "lr_schedule.max_lr"),
    ("lr_schedule=cyclic lr_schedule.step_size=0", "lr_schedule.step_size"),
    ("optimizer.beta1=1.5", "optimizer.beta1"),
    ("dataset.augment.fliplr=2", "dataset.augment.fliplr"),
])
def test_train_refused_writes_nothing(override, key, tmp_path):
    proc = train(tmp_path, "run_name=r", "train.iterations=2", *override.split())
    refused(proc, key)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("override,needle", [("train.batch_sizee=3", "train.batch_sizee"),
                                             ("dataset=nope", "dataset/nope"), ("train.crop=[64", "[64")])
def test_bad_override_is_one_line(override, needle, tmp_path):
    refused(train(tmp_path, override), needle)
    assert not (tmp_path / "outputs").exists()


def test_train_refused_keeps_existing_run_record(tmp_path):
    run = tmp_path / "outputs" / "train" / "old"
    (run / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        (run / ".hydra" / name).write_text("precious: %s\n" % name)
    before = sorted(os.listdir(str(run)))
    refused(train(tmp_path, "run_name=old", "train.batch_size=-3"), "train.batch_size")
    for name in ("config.yaml", "overrides.yaml", "hydra.yaml"):
        assert (run / ".hydra" / name).read_text() == "precious: %s\n" % name
    assert sorted(os.listdir(str(run))) == before


@pytest.mark.slow
def test_train_resume_skips_a_corrupt_newest_checkpoint(tmp_path):
    args = ["run_name=c", "train.save_interval=2", "train.val_interval=1000", "train.keep_checkpoints=5"]
    proc = train(tmp_path, "train.iterations=4", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckdir = tmp_path / "outputs" / "train" / "c" / "checkpoints"
    data = next(ckdir.glob("pwcnet.ckpt-4.data-*"))
    with open(str(data), "r+b") as fh:
        fh.truncate(data.stat().st_size // 3)
    proc = train(tmp_path, "train.iterations=6", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert "pwcnet.ckpt-4" in out and "pwcnet.ckpt-2" in out and "Traceback" not in out
    assert sorted(f.name for f in ckdir.glob("*.index"))[-1] == "pwcnet.ckpt-6.index"
    assert "run_name: c" in (ckdir.parent / ".hydra" / "config.yaml").read_text()


def test_train_resume_all_checkpoints_corrupt(tmp_path):
    ckdir = tmp_path / "outputs" / "train" / "z" / "checkpoints"
    ckdir.mkdir(parents=True)
    (ckdir / "pwcnet.ckpt-2.index").write_bytes(b"\0garbage")
    (ckdir / "pwcnet.ckpt-2.data-00000-of-00001").write_bytes(b"\0garbage")
    (ckdir / "checkpoint").write_text('model_checkpoint_path: "pwcnet.ckpt-2"\n'
                                      'all_model_checkpoint_paths: "pwcnet.ckpt-2"\n')
    refused(train(tmp_path, "run_name=z", "train.iterations=3"), "pwcnet.ckpt-2")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [6, 7])
def test_train_kill9_then_rerun(seed, tmp_path):
    """Killed while a checkpoint is staged in ``checkpoints/``: ``checkpoint`` names only whole ones; resume ends."""
    args = TINY_TRAIN + ["run_name=k", "train.iterations=6", "train.save_interval=1", "train.val_interval=3"]
    ckdir = tmp_path / "outputs" / "train" / "k" / "checkpoints"
    left = kill_while_writing(["pwcflow.train"] + args, tmp_path, seed, [ckdir], moments=4)
    assert_killed_mid_write(left)
    assert all(p.parent == ckdir for p in left)
    for name in _ckpt_names(ckdir / "checkpoint"):  # the state file names only checkpoints whose files are whole
        assert (ckdir / (name + ".index")).exists() and list(ckdir.glob(name + ".data-*")), name
    proc = train(tmp_path, "run_name=k", "train.iterations=6", "train.save_interval=1", "train.val_interval=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((tmp_path / "outputs" / "train" / "k" / "metrics.json").read_text())["step"] == 6
    assert not temps(tmp_path)


def _ckpt_names(state: Path) -> list:
    """The checkpoint prefixes (basenames) a ``checkpoint`` state file lists."""
    if not state.exists():
        return []
    return [os.path.basename(ln.split('"')[1]) for ln in state.read_text().splitlines() if '"' in ln]


# -- results -----------------------------------------------------------------------------------------------


def _run_tree(root: Path, metrics: str, config: str = None) -> Path:
    run = root / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(metrics)
    if config is not None:
        (run / ".hydra").mkdir()
        (run / ".hydra" / "config.yaml").write_text(config)
    return run


GOOD = json.dumps({"epe": 1.5, "split": "val", "dataset": "synthetic"})


@pytest.mark.parametrize("metrics,config,needle", [
    ('{"epe": 1.5,', None, "metrics.json"),
    ('[1, 2, 3]', None, "metrics.json"),
    ('{"epe": "fast", "split": "val"}', None, "metrics.json"),
    ('{"history": 3, "step": 1}', None, "metrics.json"),
    (GOOD, "model: [unclosed\n", "config.yaml"),
    (GOOD, "- just\n- a list\n", "config.yaml"),
    (GOOD, "model: 3\n", "config.yaml"),
])
def test_results_bad_run_files(metrics, config, needle, tmp_path):
    _run_tree(tmp_path, metrics, config)
    proc = run_module("pwcflow.results", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    refused(proc, needle)
    assert not (tmp_path / "rep").exists()


@pytest.mark.parametrize("argv,needle", [
    ([], "missing required setting"),
    (["runs", "--out"], "bad setting --out"),
    (["runs", "--outdir=x"], "bad setting --outdir"),
])
def test_results_bad_command_line(argv, needle, tmp_path):
    _run_tree(tmp_path, GOOD)
    refused(run_module("pwcflow.results", *argv, cwd=tmp_path), needle)


def test_results_typed_command_line():
    from pwcflow import results

    assert results.parse_args(["a", "b"]) == results.ResultsConfig(paths=("a", "b"), out="a")
    assert results.parse_args(["--out=r", "a"]).out == results.parse_args(["a", "--out", "r"]).out == "r"


def test_results_keeps_old_report_when_failing(nearly_full_dir, tmp_path):
    _run_tree(tmp_path, json.dumps({"history": [{"step": s, "val_epe": 3.0 / s} for s in range(1, 9)],
                                    "step": 8, "val_epe": 0.4}))
    out = nearly_full_dir / "rep"
    out.mkdir()
    (out / "results.md").write_text("old report")
    proc = run_module("pwcflow.results", str(tmp_path / "runs"), "--out", str(out), cwd=tmp_path)
    if proc.returncode == 0:  # everything fitted: then it is all new
        assert (out / "results.md").read_text() != "old report"
    else:
        refused(proc, out)
        assert (out / "results.md").read_text() == "old report"
    assert not temps(out)


# -- top level ---------------------------------------------------------------------------------------------


def test_unexpected_exception_is_one_line_with_a_log_pointer(tmp_path):
    code = ("import sys; from pwcflow import cli\n"
            "def boom(cfg):\n    raise RuntimeError('kaboom')\n"
            "sys.argv = ['x', 'ckpt=a', 'img1=b', 'img2=c', 'out=d']\n"
            "cli.entry('predict')(boom)()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True)
    line = refused(proc, "kaboom", "RuntimeError")
    logs = list(tmp_path.glob("outputs/predict/*/*.log"))
    assert len(logs) == 1 and "(full traceback in %s; HYDRA_FULL_ERROR=1 prints it here)" % logs[0] in line, line
    assert "Traceback" in logs[0].read_text() and "kaboom" in logs[0].read_text()

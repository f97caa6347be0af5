"""Hostile input through the real CLI (issue #27): what a user in trouble produces, one kind per test.

Each must end well: one ``error:`` line naming the file or key and exit 1 (or a warning and a correct run),
nothing that existed lost, no folder a refused command created, no temp a killed command left. Read-only and
full places are real tmpfs mounts, kills are real SIGKILLs landing while a temp file exists
(``support.faults``).
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, error_line, random_checkpoint, run_module
from support.faults import kill_mid_write, ro_mount, temps  # noqa: F401 (fixtures)

from pwcflow import cli
from pwcflow.data import flowio
from pwcflow.files import atomic, preflight

TINY = ["model=sm-6-2", "dataset.train_size=4", "dataset.val_size=1", "dataset.size=[64,64]", "train.crop=[64,64]",
        "train.batch_size=1", "train.display_interval=1", "train.val_pairs=1", "train.train_eval_pairs=1",
        "train.image_interval=1000", "train.val_interval=1000", "train.save_interval=2", "run_name=r"]


def refused(proc, *needles) -> str:
    """One ``error:`` line, exit 1, no traceback; it mentions every needle."""
    line = error_line(proc)
    for needle in needles:
        assert str(needle) in line, line
    return line


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    """A random sm-6-2 checkpoint folder (no reference data needed)."""
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=3, step=1)


def write_frames(folder: Path, n: int, size=(64, 64)) -> Path:
    """``n`` frames ``f000.png``.. of a texture moving right by one pixel a frame."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.random.RandomState(0).randint(0, 255, size + (3,), dtype=np.uint8)
    for i in range(n):
        flowio.write_image(str(folder / ("f%03d.png" % i)), np.roll(img, i, axis=1))
    return folder


# -- 1. a damaged checkpoints/checkpoint state file ------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 4-step run (checkpoints at steps 2 and 4), copied by each test."""
    cwd = tmp_path_factory.mktemp("trained")
    proc = run_module("pwcflow.train", *TINY, "train.iterations=4", cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd


DAMAGE = {"text": b"model_checkpoint_path: pwcnet.ckpt-4 {{ not a proto\n", "binary": bytes(range(256)) * 3,
          "empty": b""}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_state_file_resumes_from_newest_intact(damage, trained, tmp_path):
    shutil.copytree(str(trained / "outputs"), str(tmp_path / "outputs"))
    run = tmp_path / "outputs" / "train" / "r"
    state = run / "checkpoints" / "checkpoint"
    state.write_bytes(DAMAGE[damage])
    proc = run_module("pwcflow.train", *TINY, "train.iterations=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert str(state) in out and "resumed from %s" % (run / "checkpoints" / "pwcnet.ckpt-4") in out, out[-3000:]
    steps = [h["step"] for h in json.loads((run / "metrics.json").read_text())["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == 5, steps  # no step recorded twice, none restarted
    assert "Iter 1 [Train]" not in out and "Iter 5 [Train]" in out
    assert 'model_checkpoint_path: "pwcnet.ckpt-5"' in state.read_text()  # rewritten whole by the next save


def test_damaged_state_file_without_checkpoints_starts_fresh_and_says_so(tmp_path):
    ckdir = tmp_path / "outputs" / "train" / "r" / "checkpoints"
    ckdir.mkdir(parents=True)
    (ckdir / "checkpoint").write_bytes(DAMAGE["binary"])
    proc = run_module("pwcflow.train", *TINY, "train.iterations=1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    assert str(ckdir / "checkpoint") in out and "starting afresh" in out, out[-3000:]
    assert (ckdir / "pwcnet.ckpt-1.index").exists()


@pytest.mark.parametrize("state", ["names_a_deleted_one", "missing"])
def test_state_file_naming_too_little_still_finds_intact_checkpoints(state, tmp_path):
    from pwcflow.files import checkpoint

    random_checkpoint(tmp_path, seed=1, step=2)
    random_checkpoint(tmp_path, seed=1, step=4)
    if state == "missing":  # a kill between the first save's files and its state file
        (tmp_path / "checkpoint").unlink()
    else:
        (tmp_path / "checkpoint").write_text('model_checkpoint_path: "pwcnet.ckpt-9"\n')
    assert checkpoint.latest_intact(str(tmp_path), strict=True) == str(tmp_path / "pwcnet.ckpt-4")


# -- 2. every output location checked before the model is built ------------------------------------------


# read-only / full / nearly full sequence outputs (and every other command's): test_hostile_catalogue.py


def test_sequence_video_outside_out_is_checked_first(ckpt, tmp_path, request):
    frames = write_frames(tmp_path / "frames", 3)
    video = request.getfixturevalue("ro_mount") / "flow.mp4"
    proc = run_module("pwcflow.predict", "model=sm-6-2", "ckpt=%s" % ckpt, "input=%s" % frames,
                      "out=%s" % (tmp_path / "flow"), "video=%s" % video, cwd=tmp_path)
    refused(proc, "video", video)
    assert not (tmp_path / "flow").exists() and not (tmp_path / "outputs").exists()


# -- 3. one temp scheme, and the next run removes a dead writer's temps wherever it writes ----------------


@pytest.mark.slow
def test_sequence_killed_mid_write_then_rerun_leaves_no_temp(ckpt, tmp_path):
    frames = write_frames(tmp_path / "frames", 9, size=(256, 320))
    out = tmp_path / "flow"
    args = ["-m", "pwcflow.predict", "model=sm-6-2", "ckpt=%s" % ckpt, "input=%s" % frames, "out=%s" % out,
            "format=png16", "batch=1", "viz=true", "progress=false"]
    seen = kill_mid_write(args, tmp_path, [out, out / "viz"])
    assert seen, "the command finished before any of its temps could be caught"
    assert all(os.path.lexists(p) for p in seen)  # the kill left a partial temp behind
    proc = run_module("pwcflow.predict", *args[2:], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not temps(out), temps(out)
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["f%03d.png" % i for i in range(8)]
    for name in names:
        assert flowio.read_kitti_flow(str(out / name))[0].shape == (256, 320, 2)


def test_probe_and_writers_share_the_cleaners_scheme(tmp_path, monkeypatch):
    """The writability probe is a ``.tmp-<pid>-`` temp like every writer's: a dead one is removed."""
    seen = []
    real = os.fsync

    def spy(fd):
        seen.extend(os.listdir(str(tmp_path)))
        return real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    preflight.preflight_dir(str(tmp_path), "out")
    with atomic.atomic_file(str(tmp_path / "x.flo"), suffix=".flo") as tmp:
        seen.append(os.path.basename(tmp))
    assert len(seen) == 2 and all(atomic.owner_pid(n) == os.getpid() for n in seen), seen
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in seen:  # what a killed process with another pid leaves, in a subfolder too
        (tmp_path / "sub").mkdir(exist_ok=True)
        (tmp_path / "sub" / name.replace(str(os.getpid()), str(dead.pid), 1)).write_text("partial")
    preflight.preflight_dir(str(tmp_path), "out")
    assert not temps(tmp_path), temps(tmp_path)


# -- 4. sidecars that cannot collide; the same export twice -----------------------------------------------


@pytest.mark.slow
def test_savedmodel_beside_pb_keeps_both_records_and_reruns(ckpt, tmp_path):
    out = tmp_path / "x"
    stem = "pwcnet_sm-6-2_1x64x64"

    def export(fmt):
        proc = run_module("pwcflow.export", "model=sm-6-2", "ckpt=%s" % ckpt, "height=64", "width=64", "batch=1",
                          "format=" + fmt, "out=%s" % out, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]

    export("pb")
    export("savedmodel")
    pb = json.loads((out / (stem + ".pb.json")).read_text())
    sm = json.loads((out / (stem + "_savedmodel.json")).read_text())
    assert pb["format"] == "pb" and "atc_example" in pb and sm["format"] == "savedmodel"
    before = (out / (stem + "_savedmodel") / "saved_model.pb").stat().st_mtime_ns
    export("savedmodel")  # the same command again replaces the SavedModel folder
    assert (out / (stem + "_savedmodel") / "saved_model.pb").stat().st_mtime_ns != before
    assert sorted(os.listdir(str(out))) == sorted([stem + ".pb", stem + ".pb.json", stem + "_savedmodel",
                                                   stem + "_savedmodel.json"])


# -- 5. an option that cannot apply --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "pb"])
def test_fp16_off_tflite_is_refused(fmt, ckpt, tmp_path):
    proc = run_module("pwcflow.export", "model=sm-6-2", "ckpt=%s" % ckpt, "height=64", "width=64",
                      "format=" + fmt, "fp16=true", "out=%s" % (tmp_path / "x"), cwd=tmp_path)
    refused(proc, "fp16", "format=" + fmt)
    assert not (tmp_path / "x").exists() and not (tmp_path / "outputs").exists()


# -- 6. unexpected exceptions become one line naming the file ------------------------------------------


def test_empty_flyingchairs_split_names_the_split_file(tmp_path):
    root = tmp_path / "chairs"
    (root / "data").mkdir(parents=True)
    (root / "FlyingChairs_train_val.txt").write_text("")
    proc = run_module("pwcflow.train", "model=sm-6-2", "dataset=flyingchairs", "dataset.root=%s" % root,
                      "train.iterations=1", cwd=tmp_path)
    refused(proc, root / "FlyingChairs_train_val.txt")
    assert not (tmp_path / "outputs").exists()


def _npz_members_not_arrays(path: Path) -> None:
    with zipfile.ZipFile(str(path), "w") as zf:
        zf.writestr("final.npy", b"not an array")


@pytest.mark.parametrize("damage", ["text", "truncated_zip", "not_arrays"])
def test_doctor_corrupt_expected_npz_is_one_line_and_writes_nothing(damage, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(str(ROOT / "pwcflow" / "reference"), str(ref), ignore=shutil.ignore_patterns("*.py", "__py*"))
    npz = ref / "sm" / "expected.npz"
    if damage == "text":
        npz.write_text("garbage\n")
    elif damage == "truncated_zip":
        npz.write_bytes(npz.read_bytes()[:200])
    else:
        _npz_members_not_arrays(npz)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    refused(run_module("pwcflow.doctor", "reference=%s" % ref, "variants=[sm]", cwd=cwd), npz)
    assert os.listdir(str(cwd)) == []


# -- 7. argument edge cases --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--data_url", "--train_url=/tmp/x"], ["--data_url"], ["--train_url"]])
def test_modelarts_flag_without_value_names_it(argv, tmp_path):
    line = refused(run_module("pwcflow.train", *TINY, "train.iterations=1", *argv, cwd=tmp_path), argv[0])
    assert "no value" in line
    assert not (tmp_path / "outputs").exists()


def test_npu_extra_switch_as_the_error_says(tmp_path):
    line = refused(run_module("pwcflow.doctor", "device=npu", "device.npu.my_switch=1", cwd=tmp_path),
                   "device.npu.my_switch")
    hint = line.split("device.npu.extra", 1)[1]
    assert "my_switch" in hint  # the line says how to pass it
    proc = run_module("pwcflow.doctor", "device=npu", "device.npu.extra.my_switch=1", cwd=tmp_path)
    line = refused(proc, "npu_bridge")  # composed and typed; only the missing adapter stops it here
    assert "device.npu" not in line and os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("override,options", [("dataset=nope", ["flyingchairs", "sintel", "synthetic"]),
                                              ("device=tpu", ["cpu", "gpu", "npu"]),
                                              ("lr_schedule=linear", ["cyclic", "multisteps"])])
def test_unknown_group_option_lists_the_valid_ones(override, options, tmp_path):
    refused(run_module("pwcflow.train", "model=sm-6-2", override, cwd=tmp_path), override.split("=")[1], *options)


def test_storage_obs_without_any_obs_path_says_so(tmp_path):
    proc = run_module("pwcflow.predict", "storage=obs", "ckpt=%s" % (tmp_path / "none"), "img1=a.png",
                      "img2=b.png", "out=%s" % (tmp_path / "f.flo"), cwd=tmp_path)
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning: storage=obs")]
    assert len(warnings) == 1 and "local" in warnings[0], proc.stderr[-2000:]


def test_storage_obs_warning_only_without_remote_paths(capsys):
    from omegaconf import OmegaConf

    for node, want in (({"storage": {"name": "obs"}, "ckpt": "/a"}, True),
                       ({"storage": {"name": "obs"}, "dataset": {"root": "obs://b/d"}}, False),
                       ({"storage": {"name": "obs"}, "paths": ["/x", "s3://b/k"]}, False),
                       ({"storage": {"name": "local"}, "ckpt": "/a"}, False)):
        cli.warn_local_obs(OmegaConf.create(node))
        assert ("warning: storage=obs" in capsys.readouterr().err) == want, node


# -- 8. outputs honour the umask ---------------------------------------------------------------------------


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_predicted_files_honour_the_umask(umask, mode, ckpt, tmp_path):
    frames = write_frames(tmp_path / "frames", 2)
    out, pic = tmp_path / "f.flo", tmp_path / "f.png"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "pwcflow.predict", "model=sm-6-2", "ckpt=%s" % ckpt,
                           "img1=%s" % (frames / "f000.png"), "img2=%s" % (frames / "f001.png"), "out=%s" % out,
                           "viz=%s" % pic], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          preexec_fn=lambda: os.umask(umask))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert stat.S_IMODE(out.stat().st_mode) == mode and stat.S_IMODE(pic.stat().st_mode) == mode


def test_atomic_writers_honour_the_umask(tmp_path):
    old = os.umask(0o002)
    try:
        atomic.atomic_write_text(str(tmp_path / "a.txt"), "a")
        with atomic.atomic_file(str(tmp_path / "b.png"), suffix=".png") as tmp:
            Path(tmp).write_bytes(b"b")
    finally:
        os.umask(old)
    assert {stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()} == {0o664}

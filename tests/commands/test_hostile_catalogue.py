"""Issue #27's catalogue: every output location of every command, checked before the model is built.

One row per (command, output location, fault): the location lies on a real read-only tmpfs, a full one, or
(where the command can know what it needs: statvfs) a nearly full one. Each row must end with exit 1 and one
``error:`` line naming the location (for a nearly full disk, with the free and needed figures), and leave the
tree exactly as it was: no run dir, no ``outputs/``, no temp.

*Before the model is built* is shown two ways that fail if the order is wrong: the checkpoint is a sentinel
(``.index`` and ``.data`` of garbage) whose first read ends the command with an error naming it, not the
location (or the folder standing in a file's place); and the graph builder's log line (``sm-6-2 graph: ...``,
pwcflow/model/pwcnet.py) must not appear. ``test_sentinel_is_loud`` shows both signals do appear once the
outputs are fine.

The rest of the issue's cases live beside these (tests/commands/test_hostile_input.py, test_faults.py);
``CATALOGUE`` names the test of each, and ``test_catalogue_is_complete`` keeps the list honest. The count of
the closing note is ``pytest tests/commands/test_hostile_catalogue.py tests/commands/test_hostile_input.py``
plus the tests ``CATALOGUE`` names in test_faults.py (cases tried = collected, cases clean = passed).
"""

import ast
import json
import os
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Tuple

import numpy as np
import pytest
from conftest import error_line, run_module
from support.faults import fill, mount_tmpfs

from pwcflow.data import flowio

HERE = Path(__file__).resolve().parent
GRAPH_LOG = "sm-6-2 graph:"  # pwcnet.pwcnet() logs this the moment it builds the network
TINY_TRAIN = ["model=sm-6-2", "dataset.train_size=2", "dataset.val_size=1", "dataset.size=[64,64]",
              "train.crop=[64,64]", "train.batch_size=1", "train.iterations=1", "run_name=r"]
TINY_EVAL = ["model=sm-6-2", "dataset=synthetic", "dataset.val_size=2", "dataset.size=[64,128]", "progress=false",
             "sheet_pairs=1", "workers=1"]


@pytest.fixture(params=["ro", "full", "nearly_full"])
def mount(request, tmp_path):
    """``(fault, folder)``: a real tmpfs mounted read-only, filled to the brim, or with 8 KiB left."""
    fault = request.param
    d = mount_tmpfs(tmp_path / fault, "ro,size=1m" if fault == "ro" else "size=64k")
    if fault != "ro":
        fill(d, 8192 if fault == "nearly_full" else 0)
    yield fault, d
    subprocess.run(["umount", str(d)])


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """A checkpoint prefix that exists (so it resolves) but whose first read fails, naming it."""
    d = tmp_path / "sentinel"
    d.mkdir()
    (d / "pwcnet.ckpt-1.index").write_bytes(b"\0not an index" * 8)
    (d / "pwcnet.ckpt-1.data-00000-of-00001").write_bytes(b"\0garbage" * 4096)
    (d / "checkpoint").write_text('model_checkpoint_path: "pwcnet.ckpt-1"\n')
    return d / "pwcnet.ckpt-1"


def frames(folder: Path, n: int) -> Path:
    """``n`` 64x64 frames of a texture moving right."""
    folder.mkdir(parents=True, exist_ok=True)
    img = np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    for i in range(n):
        flowio.write_image(str(folder / ("f%03d.png" % i)), np.roll(img, i, axis=1))
    return folder


def _run_tree(tmp: Path) -> Path:
    run = tmp / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"epe": 1.5, "split": "val", "dataset": "synthetic"}))
    return tmp / "runs"


class Row(NamedTuple):
    """One output location: the command line for a location ``m`` (a folder on the mount) and a checkpoint."""

    module: str
    argv: Callable[[Path, Path, Path], Tuple[List[str], Path]]  # (mount, tmp, ckpt) -> (args, named location)
    model: bool  # the command builds a model (the sentinel and the graph log apply)
    knows_need: bool  # it can size what it will write before writing (a nearly full disk is refused up front)


def _seq(m, t, c):
    return ["model=sm-6-2", "ckpt=%s" % c, "input=%s" % frames(t / "in", 3), "out=%s" % (m / "flow"),
            "progress=false"], m / "flow"


def _pair(m, t, c, viz=False):
    f = frames(t / "in", 2)
    out = [("out=%s" % (t / "f.flo")), "viz=%s" % (m / "f.png")] if viz else ["out=%s" % (m / "f.flo")]
    return ["model=sm-6-2", "ckpt=%s" % c, "img1=%s" % (f / "f000.png"), "img2=%s" % (f / "f001.png")] + out, \
        m / ("f.png" if viz else "f.flo")


ROWS: Dict[str, Row] = {
    "train-run-dir": Row("pwcflow.train", lambda m, t, c: (TINY_TRAIN + ["init_ckpt=%s" % c,
                                                                          "hydra.run.dir=%s" % (m / "run")], m / "run"),
                         True, False),
    "train-train-url": Row("pwcflow.train", lambda m, t, c: (TINY_TRAIN + ["init_ckpt=%s" % c,
                                                                           "--train_url=%s" % (m / "run")], m / "run"),
                           True, False),
    "eval-out": Row("pwcflow.eval", lambda m, t, c: (TINY_EVAL + ["ckpt=%s" % c, "out=%s" % (m / "res")], m / "res"),
                    True, True),
    "eval-flo-dir": Row("pwcflow.eval", lambda m, t, c: (TINY_EVAL + ["ckpt=%s" % c, "out=%s" % (t / "res"),
                                                                      "flo=true", "flo_dir=%s" % (m / "flo")],
                                                         m / "flo"), True, True),
    "export-out-new": Row("pwcflow.export", lambda m, t, c: (["model=sm-6-2", "ckpt=%s" % c, "height=64", "width=64",
                                                              "out=%s" % (m / "x")], m / "x"), True, True),
    "export-out-existing": Row("pwcflow.export", lambda m, t, c: (["model=sm-6-2", "ckpt=%s" % c, "height=64",
                                                                   "width=64", "out=%s" % m], m), True, True),
    "results-out": Row("pwcflow.results", lambda m, t, c: ([str(_run_tree(t)), "--out", str(m / "rep")], m / "rep"),
                       False, False),
    "predict-pair-out": Row("pwcflow.predict", _pair, True, True),
    "predict-pair-viz": Row("pwcflow.predict", lambda m, t, c: _pair(m, t, c, viz=True), True, True),
    "predict-sequence-out": Row("pwcflow.predict", _seq, True, True),
}


def tree(root: Path) -> Dict[str, int]:
    """Every path under ``root`` with its size (folders: -1)."""
    found = {}
    for dirpath, dirs, files in os.walk(str(root)):
        found.update({os.path.join(dirpath, n): -1 for n in dirs})
        found.update({os.path.join(dirpath, n): os.path.getsize(os.path.join(dirpath, n)) for n in files})
    return found


@pytest.mark.parametrize("row", sorted(ROWS))
def test_output_location_is_checked_before_the_model(row, mount, sentinel, tmp_path):
    fault, m = mount
    spec = ROWS[row]
    if fault == "nearly_full" and not spec.knows_need:
        pytest.skip("%s cannot size its output before writing it" % spec.module)
    args, where = spec.argv(m, tmp_path, sentinel)
    before = tree(tmp_path)
    proc = run_module(spec.module, *args, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    line = error_line(proc)
    assert str(where) in line and "unexpected" not in line, line
    assert GRAPH_LOG not in out and str(sentinel) not in line, out[-3000:]  # refused before the model and ckpt
    if fault == "nearly_full":
        assert "MB free" in line and "needed" in line, line
    assert tree(tmp_path) == before  # no run dir, no outputs/, no temp, nothing that existed changed


@pytest.mark.slow
@pytest.mark.parametrize("row", sorted(r for r in ROWS if ROWS[r].model))
def test_sentinel_is_loud(row, sentinel, tmp_path):
    """The control: with writable outputs the same command builds the graph and fails on the sentinel."""
    ok = tmp_path / "ok"
    ok.mkdir()
    args, _ = ROWS[row].argv(ok, tmp_path, sentinel)
    proc = run_module(ROWS[row].module, *args, cwd=tmp_path)
    line = error_line(proc)
    assert str(sentinel) in line or "checkpoint" in line, line
    assert GRAPH_LOG in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


# -- the rest of the list: the test that tries each case -----------------------------------------

HI, FA, HC = "test_hostile_input.py", "test_faults.py", "test_hostile_catalogue.py"
CATALOGUE: List[Tuple[str, str, str]] = [  # (case, module, test)
    ("damaged checkpoint state file (text, binary, empty)", HI, "test_damaged_state_file_resumes_from_newest_intact"),
    ("damaged state file, no checkpoint at all", HI,
     "test_damaged_state_file_without_checkpoints_starts_fresh_and_says_so"),
    ("state file naming too little", HI, "test_state_file_naming_too_little_still_finds_intact_checkpoints"),
    ("every output location read-only / full / nearly full", HC, "test_output_location_is_checked_before_the_model"),
    ("a folder where an output file goes (export file/sidecar, eval index.html, ...)", HC,
     "test_a_folder_where_an_output_file_goes"),
    ("sequence video outside out", HI, "test_sequence_video_outside_out_is_checked_first"),
    ("leftover temps after kill -9 of predict", HI, "test_sequence_killed_mid_write_then_rerun_leaves_no_temp"),
    ("the probe's temp name matches the cleaner", HI, "test_probe_and_writers_share_the_cleaners_scheme"),
    ("sidecar collision pb vs savedmodel", HI, "test_savedmodel_beside_pb_keeps_both_records_and_reruns"),
    ("the same export twice, every format of the leg", FA, "test_rerun_after_a_completed_run"),
    ("onnx fp16 (and pb fp16)", HI, "test_fp16_off_tflite_is_refused"),
    ("empty FlyingChairs split", HI, "test_empty_flyingchairs_split_names_the_split_file"),
    ("corrupt expected.npz for doctor, no doctor.log", HI,
     "test_doctor_corrupt_expected_npz_is_one_line_and_writes_nothing"),
    ("--data_url / --train_url without value", HI, "test_modelarts_flag_without_value_names_it"),
    ("device.npu.extra.KEY=V", HI, "test_npu_extra_switch_as_the_error_says"),
    ("unknown group option lists the valid ones", HI, "test_unknown_group_option_lists_the_valid_ones"),
    ("storage=obs without obs:// path", HI, "test_storage_obs_without_any_obs_path_says_so"),
    ("file modes under umask 022, 027 and 077", HI, "test_predicted_files_honour_the_umask"),
]


def _tests_in(module: str) -> List[str]:
    body = ast.parse((HERE / module).read_text()).body
    return [n.name for n in body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]


def test_catalogue_is_complete():
    """Each case of the issue's list names a test that exists (a renamed or dropped one fails here)."""
    for case, module, name in CATALOGUE:
        assert name in _tests_in(module), (case, module, name)


STEM = "pwcnet_sm-6-2_1x64x64"
BLOCKED: Dict[str, Tuple[str, str]] = {  # row -> (ROWS entry run on a writable folder, the file a folder blocks)
    "export-file": ("export-out-existing", STEM + ".pb"),
    "export-sidecar": ("export-out-existing", STEM + ".pb.json"),
    "eval-index-html": ("eval-out", "res/index.html"),
    "eval-contact-sheet": ("eval-out", "res/contact_sheet.png"),
    "results-md": ("results-out", "rep/results.md"),
    "predict-pair-out": ("predict-pair-out", "f.flo"),
    "predict-sequence-flow": ("predict-sequence-out", "flow/f000.flo"),
}


@pytest.mark.parametrize("row", sorted(BLOCKED))
def test_a_folder_where_an_output_file_goes(row, sentinel, tmp_path):
    """An output file's place taken by a folder (a user's own, kept): refused naming it, before the model."""
    base, blocked = BLOCKED[row]
    m = tmp_path / "w"
    (m / blocked / "keep").mkdir(parents=True)
    args, _ = ROWS[base].argv(m, tmp_path, sentinel)
    before = tree(tmp_path)
    proc = run_module(ROWS[base].module, *args, cwd=tmp_path)
    line = error_line(proc)
    assert str(m / blocked) in line and "unexpected" not in line, line
    assert GRAPH_LOG not in proc.stdout + proc.stderr and str(sentinel) not in line
    assert tree(tmp_path) == before

"""Atomic file and folder writes (``files/atomic.py``): all or nothing, one temp scheme, one cleaner."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.faults import temps

from pwcflow.errors import UserError
from pwcflow.files import atomic


def test_atomic_files_all_or_nothing(tmp_path):
    (tmp_path / "a.txt").write_text("old a")

    def boom(tmp):
        raise OSError(28, "No space left on device", tmp)

    with pytest.raises(UserError, match="No space left on device"):
        atomic.atomic_files([(str(tmp_path / "a.txt"), lambda t: Path(t).write_text("new a")),
                              (str(tmp_path / "b.txt"), boom)])
    assert (tmp_path / "a.txt").read_text() == "old a" and not (tmp_path / "b.txt").exists()
    assert not temps(tmp_path)
    atomic.atomic_write_json(str(tmp_path / "c.json"), {"x": 1})
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": 1} and not temps(tmp_path)


def test_atomic_dir_new_merge_and_failure(tmp_path):
    res = tmp_path / "res"
    with atomic.atomic_dir(str(res), last="metrics.json") as stage:
        Path(stage, "metrics.json").write_text("1")
        assert not res.exists()
    assert (res / "metrics.json").read_text() == "1"
    (res / "keep.txt").write_text("keep")
    with pytest.raises(UserError, match=str(res)):
        with atomic.atomic_dir(str(res), last="metrics.json") as stage:
            Path(stage, "metrics.json").write_text("2")
            raise OSError(28, "No space left on device", os.path.join(stage, "sheet.png"))
    assert (res / "metrics.json").read_text() == "1" and (res / "keep.txt").exists()
    with atomic.atomic_dir(str(res), last="metrics.json") as stage:
        Path(stage, "metrics.json").write_text("3")
        Path(stage, "pictures").mkdir()
    assert (res / "metrics.json").read_text() == "3" and (res / "keep.txt").exists() and (res / "pictures").is_dir()
    assert not temps(tmp_path)


def test_remove_stale_only_removes_dead_processes(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / (".tmp-%d-x" % dead.pid)).mkdir()
    (tmp_path / (".tmp-%d-y" % os.getpid())).write_text("mine, still running")
    atomic.remove_stale(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [".tmp-%d-y" % os.getpid()]
    atomic.remove_stale(str(tmp_path), owned=True)  # a folder only this run writes: every temp goes
    assert list(tmp_path.iterdir()) == []


def test_every_temp_name_carries_the_writer_pid(tmp_path):
    """One scheme: atomic_file, atomic_files, atomic_dir and temp_dir all stage under .tmp-<pid>-."""
    seen = []
    with atomic.atomic_file(str(tmp_path / "a.png"), suffix=".png") as tmp:
        seen.append(os.path.basename(tmp))
        Path(tmp).write_text("a")
    atomic.atomic_files([(str(tmp_path / "b.txt"), lambda t: seen.append(os.path.basename(t)))])
    with atomic.atomic_dir(str(tmp_path / "c")) as stage:
        seen.append(os.path.basename(stage))
    seen.append(os.path.basename(atomic.temp_dir(str(tmp_path))))
    tag = ".tmp-%d-" % os.getpid()
    assert len(seen) == 4 and all(name.startswith(tag) for name in seen), seen
    assert seen[0].endswith(".png") and seen[1] == tag + "b.txt" and seen[2] == tag + "c"


def test_atomic_writers(tmp_path):
    path = str(tmp_path / "sub" / "x.json")
    atomic.atomic_write_json(path, {"b": 1, "a": [1, 2]})
    assert atomic.read_json(path) == {"a": [1, 2], "b": 1}
    with pytest.raises(RuntimeError):
        with atomic.atomic_file(path) as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("killed")
    assert atomic.read_json(path) == {"a": [1, 2], "b": 1}  # the old content survives
    assert not [f for f in os.listdir(str(tmp_path / "sub")) if f.startswith(".tmp-")]


def test_a_ctrl_c_right_after_the_temp_is_made_leaves_no_temp(tmp_path, monkeypatch):
    """KeyboardInterrupt between the temp's creation and the write (seen in live predict's Ctrl-C): the temp goes."""
    real_close, struck = os.close, []

    def close_then_interrupt(fd):
        real_close(fd)
        if not struck:  # the first close is the temp's creation in atomic_file
            struck.append(fd)
            raise KeyboardInterrupt

    path = tmp_path / "frame.flo"
    path.write_bytes(b"old")
    monkeypatch.setattr(atomic.os, "close", close_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic.atomic_write_bytes(str(path), b"new")
    monkeypatch.undo()
    assert struck and sorted(os.listdir(str(tmp_path))) == ["frame.flo"] and path.read_bytes() == b"old"


def test_atomic_dir_replaces_whole_folder(tmp_path):
    final = tmp_path / "model"
    with atomic.atomic_dir(str(final), replace=True) as tmp:
        open(os.path.join(tmp, "one"), "w").write("1")
    with pytest.raises(ValueError):
        with atomic.atomic_dir(str(final), replace=True) as tmp:
            open(os.path.join(tmp, "two"), "w").write("2")
            raise ValueError("stop")
    assert sorted(os.listdir(str(final))) == ["one"]
    with atomic.atomic_dir(str(final), replace=True) as tmp:
        open(os.path.join(tmp, "two"), "w").write("2")
    assert sorted(os.listdir(str(final))) == ["two"]
    (tmp_path / ".tmp-stale").mkdir()
    atomic.remove_stale(str(tmp_path), owned=True)
    assert sorted(os.listdir(str(tmp_path))) == ["model"]

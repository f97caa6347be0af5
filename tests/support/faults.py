"""Real faults for CLI tests: read-only and full tmpfs mounts, and kill -9 while a temp file is being written.

Mounts need root (``mount -t tmpfs``); where it is refused the fixture skips with the reason. The kill helper
freezes the command (SIGSTOP) the moment one of its ``.tmp-<pid>-*`` entries appears, checks that the entry is
still there (so the kill provably lands mid-write), then sends SIGKILL.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[2]


def temps(folder) -> List[str]:
    """Temp leftovers (``.tmp*``, ``*.tmp``) anywhere under ``folder``."""
    found = []
    for dirpath, dirs, files in os.walk(str(folder)):
        found += [os.path.join(dirpath, n) for n in dirs + files if n.startswith(".tmp") or n.endswith(".tmp")]
    return found


def mount_tmpfs(target: Path, opts: str) -> Path:
    """Mount a tmpfs with ``opts`` on ``target`` (skip the test where mounting is not allowed)."""
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (%s): %s" % (opts, proc.stderr.strip() or "not root"))
    return target


def fill(d: Path, leave: int) -> None:
    """Fill the tmpfs ``d`` up to ``leave`` free bytes."""
    with open(str(d / "filler"), "wb") as fh:
        try:
            while True:
                st = os.statvfs(str(d))
                free = st.f_bavail * st.f_frsize
                if free <= leave:
                    break
                fh.write(b"\0" * min(4096, free - leave))
                fh.flush()
        except OSError:
            pass


@pytest.fixture
def ro_mount(tmp_path):
    """A real read-only file system (root ignores chmod, not a ro mount)."""
    d = mount_tmpfs(tmp_path / "ro", "ro,size=1m")
    yield d
    subprocess.run(["umount", str(d)])


@pytest.fixture
def full_mount(tmp_path):
    """A tiny tmpfs (64 KiB) filled to the brim."""
    d = mount_tmpfs(tmp_path / "full", "size=64k")
    fill(d, 0)
    yield d
    subprocess.run(["umount", str(d)])


def _entries(folders: Sequence[Path], pid: int) -> List[str]:
    tag = ".tmp-%d-" % pid
    found = []
    for folder in folders:
        try:
            found += [os.path.join(str(folder), n) for n in os.listdir(str(folder)) if n.startswith(tag)]
        except OSError:  # not created yet
            pass
    return found


def kill_mid_write(argv: Sequence[str], cwd: Path, folders: Sequence[Path], timeout: float = 300,
                   env: Optional[dict] = None) -> List[str]:
    """Run ``python argv...``; SIGKILL it while one of its own temp entries (``.tmp-<its pid>-*``) exists in one
    of ``folders``. Returns the temp paths seen at the kill ([] if the command finished first)."""
    full_env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.Popen([sys.executable] + list(argv), cwd=str(cwd), env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    try:
        while proc.poll() is None and time.time() < deadline:
            if not _entries(folders, proc.pid):
                time.sleep(0.0005)
                continue
            proc.send_signal(signal.SIGSTOP)  # frozen: what is there now stays there until the kill
            seen = _entries(folders, proc.pid)
            if seen:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return seen
            proc.send_signal(signal.SIGCONT)  # renamed between the two looks: wait for the next one
        return []
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

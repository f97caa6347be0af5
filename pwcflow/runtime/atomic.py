"""Atomic file and folder writes: readers see the old content or the new, never half of it.

Every writer builds its output under a temp name starting ``TMP_PREFIX`` (``.tmp-``) in the same
folder and renames it into place; ``remove_stale_temps`` deletes what a killed process left behind.

API (small on purpose; other modules build on it):

* ``atomic_write_bytes(path, data)``, ``atomic_write_text(path, text)``, ``atomic_write_json(path, obj)``;
* ``atomic_dir(final_path)``: a context manager yielding a sibling temp dir to fill, renamed to
  ``final_path`` on success (an existing ``final_path`` is replaced), deleted on error;
* ``atomic_file(path, suffix)``: a context manager yielding a sibling temp file path for writers that
  need a path of their own (cv2, an SDK download); renamed to ``path`` on success, deleted on error.
  Every file writer above goes through it;
* ``remove_stale_temps(folder)``, ``read_json(path)``.
"""

import contextlib
import json
import os
import shutil
import tempfile
from typing import Any, Iterator, Optional

TMP_PREFIX = ".tmp-"

__all__ = ["TMP_PREFIX", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_dir",
           "atomic_file", "remove_stale_temps", "read_json"]


def _folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder


@contextlib.contextmanager
def atomic_file(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a new sibling temp file path (``.tmp-*<suffix>``); rename it onto ``path`` on success.

    On an exception the temp file is removed and ``path`` is left as it was.
    """
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=_folder(path))
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            with contextlib.suppress(OSError):
                os.remove(tmp)


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` via a sibling temp file and a rename."""
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str, text: str) -> None:
    """``atomic_write_bytes`` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, data: Any, indent: Optional[int] = 2, sort_keys: bool = True) -> None:
    """``atomic_write_text`` for JSON (pretty, sorted keys, trailing newline unless ``indent=None``)."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys)
    atomic_write_text(path, text + "\n" if indent is not None else text)


@contextlib.contextmanager
def atomic_dir(final_path: str) -> Iterator[str]:
    """Yield a sibling temp dir; on success it replaces ``final_path`` (a dir), on error it is deleted."""
    final_path = os.path.abspath(final_path)
    tmp = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=_folder(final_path))
    try:
        yield tmp
        if os.path.isdir(final_path):
            old = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=os.path.dirname(final_path))
            os.rmdir(old)
            os.replace(final_path, old)
            os.replace(tmp, final_path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale_temps(folder: str) -> None:
    """Delete ``.tmp-*`` leftovers of a write a killed process never finished (never real output)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(TMP_PREFIX):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)


def read_json(path: str) -> Any:
    """JSON content of ``path``, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)

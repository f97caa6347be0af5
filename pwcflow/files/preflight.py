"""What every command writes: checked before the work starts, then written whole or not at all.

- ``preflight_file`` / ``preflight_dir``: the place is writable (a real probe, so read-only mounts and
  full disks show up even for root), a folder is not where a file is needed and vice versa, the
  extension is one the writer knows, and there is room for what is known to be needed. Both also remove
  what a killed earlier run left there (``atomic.remove_stale``: temps of writers that are gone; a folder's
  whole tree, a file's folder only). The probe itself is a temp of the one scheme (``.tmp-<pid>-probe``).
- ``refuse_folders``: the files a command writes inside its output folder have no folder in their place.

Writing itself (whole or not at all) is ``pwcflow.files.atomic``'s job.
"""

import contextlib
import os
from typing import Iterable, Optional, Sequence

from pwcflow.errors import UserError
from pwcflow.files import atomic


def os_error(exc: OSError, path: str) -> UserError:
    """``cannot write PATH: No space left on device`` (the OS's reason, one line)."""
    return UserError("cannot write %s: %s" % (path, exc.strerror or exc))


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def free_bytes(path: str) -> Optional[int]:
    """Free bytes on the file system that ``path`` (or its nearest existing ancestor) is on, if known."""
    try:
        st = os.statvfs(_existing_ancestor(path))
    except (OSError, AttributeError):
        return None
    return st.f_bavail * st.f_frsize


def _probe(folder: str, key: str, need: int, target: str) -> None:
    """Create, fill and delete a temp file in ``folder``: fails on read-only mounts and full disks."""
    tmp = atomic.temp_sibling(os.path.join(folder, "probe"))
    try:
        with open(tmp, "wb") as fh:
            fh.write(b"\0" * 4096)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UserError("bad setting %s=%s: cannot write in %s: %s" % (key, target, folder, exc.strerror or exc))
    finally:
        with contextlib.suppress(OSError):
            os.remove(tmp)
    free = free_bytes(folder)
    if need and free is not None and free < need:
        raise UserError("bad setting %s=%s: not enough space in %s (%.1f MB free, about %.1f MB needed)"
                        % (key, target, folder, free / 1e6, need / 1e6))


def _check_parent(path: str, key: str, need: int) -> None:
    anc = _existing_ancestor(os.path.dirname(os.path.abspath(path)))
    if not os.path.isdir(anc):
        raise UserError("bad setting %s=%s: %s is a file, not a folder" % (key, path, anc))
    _probe(anc, key, need, path)


def preflight_file(path: str, key: str, exts: Sequence[str] = (), need: int = 0) -> str:
    """Check that the file ``path`` (setting ``key``) can be written; return it absolute."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(path):
        raise UserError("bad setting %s=%s: is a folder, a file path is needed" % (key, path))
    if exts and os.path.splitext(path)[1].lower() not in exts:
        raise UserError("bad setting %s=%s: the file name must end with %s" % (key, path, " or ".join(exts)))
    _check_parent(path, key, need)
    atomic.remove_stale(os.path.dirname(path))
    return path


def preflight_dir(path: str, key: str, need: int = 0) -> str:
    """Check that the folder ``path`` (setting ``key``) can be created or written into; return it absolute."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError("bad setting %s=%s: is a file, a folder is needed" % (key, path))
    if os.path.isdir(path):
        _probe(path, key, need, path)
        atomic.remove_stale(path, tree=True)
    else:
        _check_parent(path, key, need)
    return path


def refuse_folders(paths: Iterable[str], key: str, value: str) -> None:
    """Refuse (one line naming it) a folder standing where one of the files ``paths`` will be written."""
    for path in paths:
        if os.path.isdir(path):
            raise UserError("bad setting %s=%s: %s is a folder where a file is written" % (key, value, path))

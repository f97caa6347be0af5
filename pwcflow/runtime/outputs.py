"""What every command writes: checked before the work starts, then written whole or not at all.

- ``preflight_file`` / ``preflight_dir``: the place is writable (a real probe, so read-only mounts and
  full disks show up even for root), a folder is not where a file is needed and vice versa, the
  extension is one the writer knows, and there is room for what is known to be needed.
- ``atomic_write_bytes/text/json`` and ``atomic_files``: temp siblings ``.tmp-<pid>-<name>`` renamed
  over the targets only once every one of them is complete (a writer that creates nothing is skipped);
  on any failure the temps are removed and the old files are untouched.
- ``atomic_dir``: a result folder is built in a temp sibling and appears complete or not at all
  (into an existing folder: its ``last`` file, e.g. ``metrics.json``, is removed first and moved in last).
- ``remove_stale``: temps left by a killed process (its pid is gone) are deleted on the next run.

``OSError`` while writing becomes a one-line ``UserError`` naming the path.
"""

import contextlib
import errno
import json
import os
import shutil
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from pwcflow.errors import UserError

TMP = ".tmp-"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")


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
    tmp = os.path.join(folder, "%sprobe-%d" % (TMP, os.getpid()))
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
    return path


def preflight_dir(path: str, key: str, need: int = 0) -> str:
    """Check that the folder ``path`` (setting ``key``) can be created or written into; return it absolute."""
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.lexists(path) and not os.path.isdir(path):
        raise UserError("bad setting %s=%s: is a file, a folder is needed" % (key, path))
    if os.path.isdir(path):
        _probe(path, key, need, path)
    else:
        _check_parent(path, key, need)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: str) -> List[str]:
    """Delete ``.tmp-<pid>-*`` entries in ``folder`` whose process is gone; return what was removed."""
    removed = []
    if not os.path.isdir(folder):
        return removed
    for name in os.listdir(folder):
        pid = name[len(TMP):].split("-", 1)[0]
        if name.startswith(TMP) and pid.isdigit() and not _pid_alive(int(pid)):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(path)
            removed.append(path)
    return removed


def temp_sibling(path: str) -> str:
    """``<dir>/.tmp-<pid>-<name>``: keeps the extension last (writers pick the format from it)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, "%s%d-%s" % (TMP, os.getpid(), name))


def _discard(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


def atomic_files(items: Sequence[Tuple[str, Callable[[str], object]]]) -> None:
    """Run each ``writer(temp_path)``, then rename every temp over its path; all or nothing on failure."""
    done: List[Tuple[str, str]] = []
    current = ""
    try:
        for path, writer in items:
            current = path
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            tmp = temp_sibling(path)
            done.append((tmp, path))
            if writer(tmp) is False:
                raise UserError("cannot write %s" % path)
        for tmp, path in done:
            current = path
            if os.path.lexists(tmp):  # a writer that created nothing leaves its target alone
                os.replace(tmp, path)
    except OSError as exc:
        raise os_error(exc, current)
    finally:
        for tmp, _ in done:
            _discard(tmp)


def _bytes_writer(data: bytes) -> Callable[[str], None]:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return write


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp sibling and a rename."""
    atomic_files([(path, _bytes_writer(data))])


def atomic_write_text(path: str, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str, data) -> None:
    """``atomic_write_bytes`` for indented, key-sorted JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _merge(stage: str, path: str, last: Optional[str]) -> None:
    """Move the entries of ``stage`` into the existing folder ``path``, ``last`` after all others."""
    if last and os.path.lexists(os.path.join(path, last)):
        os.remove(os.path.join(path, last))
    names = sorted(os.listdir(stage), key=lambda n: n == last)
    for name in names:
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            old = temp_sibling(target)
            os.replace(target, old)
            os.replace(os.path.join(stage, name), target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(os.path.join(stage, name), target)


@contextlib.contextmanager
def atomic_dir(path: str, last: Optional[str] = None) -> Iterator[str]:
    """Yield a temp sibling folder to fill; on success it becomes ``path`` (or is merged into it).

    A new ``path`` appears by one rename. An existing one (a Hydra run dir) keeps what the stage does
    not replace; ``last`` (the file that marks the folder as a result) is removed first and moved in last.
    On any failure the stage is deleted and ``path`` is as it was.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    stage = temp_sibling(path)
    try:
        os.makedirs(parent, exist_ok=True)
        remove_stale(parent)
        os.mkdir(stage)
        yield stage
        if os.path.isdir(path):
            _merge(stage, path, last)
        else:
            os.rename(stage, path)
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise UserError("cannot write %s: it appeared while this command ran" % path)
        raise UserError(str(os_error(exc, exc.filename or path)).replace(stage, path))
    except UserError as exc:  # name the result folder, not its temp stage
        raise UserError(str(exc).replace(stage, path)) from None
    finally:
        _discard(stage)


def verify_checkpoint(prefix: str) -> Optional[str]:
    """Read every tensor of a checkpoint; return why it is unreadable (one line), or None when intact."""
    from pwcflow.tf1 import tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # DataLossError, OutOfRangeError, NotFoundError, ... from the C++ reader
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None

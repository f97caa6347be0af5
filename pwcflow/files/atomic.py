"""Atomic file and folder writes: readers see the old content or the new, never half of it.

Every writer builds its output under a temp name in the same folder and renames it into place. There is
one temp-name scheme, ``.tmp-<pid>-<rest>`` (``TMP_PREFIX`` + the writer's process id), and one cleaner,
``remove_stale(folder, owned)``: it deletes the temps of processes that are gone (a kill -9 mid-write), and
with ``owned=True`` (a folder only this run writes, e.g. its checkpoints) every temp, whoever wrote it.

API (small on purpose; other modules build on it):

* ``atomic_write_bytes(path, data)``, ``atomic_write_text(path, text)``, ``atomic_write_json(path, obj)``;
* ``atomic_files([(path, writer), ...])``: several files, all or none (``writer(temp_path)`` each);
* ``atomic_dir(path, last=None, replace=False)``: a context manager yielding a sibling temp dir to fill;
  on success it becomes ``path`` (merged into an existing one, ``last`` moved in last; or swapped whole
  with ``replace=True``), deleted on error; ``OSError`` becomes a one-line ``UserError`` naming ``path``;
* ``atomic_file(path, suffix)``: a context manager yielding a sibling temp file path for writers that
  need a path of their own (cv2, an SDK download); renamed to ``path`` on success, deleted on error.
  Every file writer above goes through it;
* ``temp_sibling(path)`` (``.tmp-<pid>-<name>``), ``temp_dir(folder)`` (a new ``.tmp-<pid>-*`` folder) for
  writers that stage elsewhere (checkpoint saves, exports);
* ``replace_path(src, dst)``: rename a finished file or folder onto ``dst`` (an existing folder is swapped out);
* ``remove_stale(folder, owned=False, tree=False)``, ``owner_pid(name)``, ``read_json(path)``.

Files come out with the mode ``open()`` gives them (0666 less the umask), not ``mkstemp``'s 0600.
"""

import contextlib
import errno
import itertools
import json
import os
import shutil
import tempfile
import threading
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

from pwcflow.errors import UserError

TMP_PREFIX = ".tmp-"

__all__ = ["TMP_PREFIX", "atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_dir",
           "atomic_file", "atomic_files", "remove_stale", "owner_pid", "read_json", "temp_sibling", "temp_dir",
           "replace_path"]

_COUNTER = itertools.count()
_COUNTER_LOCK = threading.Lock()


def _folder(path: str) -> str:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    return folder


@contextlib.contextmanager
def atomic_file(path: str, suffix: str = "") -> Iterator[str]:
    """Yield a new sibling temp file path (``.tmp-<pid>-*<suffix>``, unique across threads); rename it onto
    ``path`` on success.

    On an exception the temp file is removed and ``path`` is left as it was, also when the exception (a Ctrl-C's
    ``KeyboardInterrupt``) strikes between the temp's creation and the ``yield``: the name is chosen before the
    file is made, so the cleanup always knows it. The temp is created like ``open(..., "w")`` creates a file
    (mode 0666 less the umask), so the result has the usual mode.
    """
    folder = _folder(path)
    tmp = _temp_name(folder, suffix)
    try:
        while not _create_new(tmp):  # taken: left by an earlier process that had this pid
            tmp = _temp_name(folder, suffix)
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):  # ours, or a dead namesake's leftover: either way garbage
            with contextlib.suppress(OSError):
                os.remove(tmp)


def _temp_name(folder: str, suffix: str) -> str:
    """``<folder>/.tmp-<pid>-<n><suffix>``, ``n`` new in this process (thread-safe)."""
    with _COUNTER_LOCK:
        n = next(_COUNTER)
    return os.path.join(folder, "%s%d%s" % (_pid_prefix(), n, suffix))


def _create_new(path: str) -> bool:
    """Create ``path`` empty with the umask applied (``O_EXCL``, no race); False if it already exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        return True
    except FileExistsError:
        return False


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
        raise UserError("cannot write %s: %s" % (current, exc.strerror or exc))
    finally:
        for tmp, _ in done:
            _discard(tmp)


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
def atomic_dir(path: str, last: Optional[str] = None, replace: bool = False) -> Iterator[str]:
    """Yield a temp sibling folder to fill; on success it becomes ``path`` (or is merged into it).

    A new ``path`` appears by one rename. An existing one (a Hydra run dir) keeps what the stage does
    not replace; ``last`` (the file that marks the folder as a result) is removed first and moved in last.
    ``replace=True`` swaps an existing ``path`` for the stage whole instead.
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
        if os.path.isdir(path) and replace:
            replace_path(stage, path)
        elif os.path.isdir(path):
            _merge(stage, path, last)
        else:
            os.rename(stage, path)
    except OSError as exc:
        if exc.errno == errno.ENOTEMPTY:
            raise UserError("cannot write %s: it appeared while this command ran" % path)
        raise UserError(("cannot write %s: %s" % (exc.filename or path, exc.strerror or exc)).replace(stage, path))
    except UserError as exc:  # name the result folder, not its temp stage
        raise UserError(str(exc).replace(stage, path)) from None
    finally:
        _discard(stage)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_pid(name: str) -> Optional[int]:
    """The writer's process id in a temp name ``.tmp-<pid>-...`` (None for any other name)."""
    if not name.startswith(TMP_PREFIX):
        return None
    pid = name[len(TMP_PREFIX):].split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def remove_stale(folder: str, owned: bool = False, tree: bool = False) -> List[str]:
    """Delete the temps (``.tmp-*``) in ``folder`` that no running writer will finish; return their paths.

    A temp is stale when the process its ``.tmp-<pid>-`` tag names is gone. ``owned=True`` is for folders
    only this run writes (found at its start): there every temp is stale, whatever its tag. ``tree=True``
    looks in the subfolders too (a command's output tree: ``backward/``, ``viz/``, per-scene folders).
    """
    removed: List[str] = []
    if not os.path.isdir(folder):
        return removed
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            pid = owner_pid(name)
            if name.startswith(TMP_PREFIX) and (owned or (pid is not None and not _pid_alive(pid))):
                path = os.path.join(dirpath, name)
                _discard(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if tree and not d.startswith(TMP_PREFIX)]  # os.walk follows no links
    return removed


def replace_path(src: str, dst: str) -> None:
    """Rename the finished file or folder ``src`` onto ``dst``; an existing folder ``dst`` is moved aside
    under a temp name first and deleted after (a rerun's cleaner removes it if this process dies between)."""
    if os.path.isdir(dst) and not os.path.islink(dst):
        old = temp_sibling(dst + "-old")
        os.replace(dst, old)
        os.replace(src, dst)
        _discard(old)
    else:
        os.replace(src, dst)


def _pid_prefix() -> str:
    return "%s%d-" % (TMP_PREFIX, os.getpid())


def temp_sibling(path: str) -> str:
    """``<dir>/.tmp-<pid>-<name>``: keeps the extension last (writers pick the format from it)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, _pid_prefix() + name)


def temp_dir(folder: str) -> str:
    """Create and return a new, unique ``<folder>/.tmp-<pid>-*`` folder to stage a write in."""
    os.makedirs(folder, exist_ok=True)
    return tempfile.mkdtemp(prefix=_pid_prefix(), dir=folder)


def _discard(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


def read_json(path: str) -> Any:
    """JSON content of ``path``, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)

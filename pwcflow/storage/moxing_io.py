"""``obs://`` / ``s3://`` transfers through Huawei's ``moxing.file`` when it is importable (ModelArts images).

ModelArts training containers carry no ``OBS_*`` keys: the job's temporary credentials live inside the
``moxing`` package the images ship (Huawei's, not the unrelated PyPI project of that name). ``MoxingStore``
offers the methods of ``obs.ObsStore`` that ``storage`` uses (``list``, ``head``, ``download``, ``upload``,
``read_text``, ``check_bucket``) on top of ``moxing.file``: ``list_directory(url, recursive=True)``,
``get_size(url)``, ``exists(url)``, ``is_directory(url)``, ``copy(src_url, dst_url)`` and ``read(url, binary)``
(files are copied one by one on ``storage``'s worker threads, so the checkpoint-safe upload order and the cache's
skip-unchanged logic stay the same as with esdk-obs-python; ``copy_parallel`` marks Huawei's package).
"""

import importlib
import os
from typing import Any, Iterator, Optional

from pwcflow.errors import UserError
from pwcflow.files.atomic import atomic_file
from pwcflow.storage.obs import ObjectInfo, join_key

NEEDED = ("copy", "copy_parallel", "exists", "get_size", "is_directory", "list_directory", "read")


def moxing_file() -> Optional[Any]:
    """``moxing.file`` if Huawei's moxing is importable (it has ``copy_parallel``), else None."""
    if os.environ.get("PWCFLOW_NO_MOXING"):
        return None
    try:
        mod = importlib.import_module("moxing")
    except Exception:  # noqa: BLE001 (a broken or foreign ``moxing`` means: not on ModelArts)
        return None
    file_api = getattr(mod, "file", None)
    if file_api is None or not all(hasattr(file_api, name) for name in NEEDED):
        return None
    return file_api


def _url(bucket: str, key: str) -> str:
    return "obs://%s/%s" % (bucket, key) if key else "obs://%s" % bucket


class MoxingStore:
    """The ``ObsStore`` interface over ``moxing.file`` (credentials and endpoint are moxing's business)."""

    def __init__(self, file_api: Any, workers: int = 8, cache_dir: Optional[str] = None) -> None:
        self.mox, self.workers, self.cache_dir = file_api, int(workers), cache_dir

    def __repr__(self) -> str:
        return "MoxingStore(moxing.file)"

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> "MoxingStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _do(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 (moxing raises its own and OBS client errors)
            raise UserError("moxing.file %s failed: %s" % (what, str(exc).splitlines()[0] if str(exc)
                                                           else type(exc).__name__)) from None

    def check_bucket(self, bucket: str) -> None:
        """One line when the bucket cannot be reached."""
        if not self._do("exists obs://%s" % bucket, self.mox.exists, _url(bucket, "")):
            raise UserError("OBS bucket %s does not exist or this job cannot reach it (through moxing)" % bucket)

    def list(self, bucket: str, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with ``prefix`` (directory listing of the prefix's folder, recursive)."""
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = _url(bucket, folder)
        if not self._do("exists %s" % base, self.mox.exists, base) or not self.mox.is_directory(base):
            return
        for rel in self._do("list_directory %s" % base, self.mox.list_directory, base, recursive=True):
            key = join_key(folder, rel)
            url = _url(bucket, key)
            if key.startswith(prefix) and not self.mox.is_directory(url):
                yield self._info(key, url)

    def head(self, bucket: str, key: str) -> Optional[ObjectInfo]:
        """The object's size and version, or None if it does not exist."""
        url = _url(bucket, key)
        if not key or not self._do("exists %s" % url, self.mox.exists, url) or self.mox.is_directory(url):
            return None
        return self._info(key, url)

    def _info(self, key: str, url: str) -> ObjectInfo:
        """Size and a version in place of the ETag moxing does not list: ``mtime:<ns>`` from ``mox.file.stat``
        (``length``, ``mtime_nsec``), so the cache fetches a rewritten object of the same size again; without
        ``stat`` an empty version, which the cache never trusts."""
        if not hasattr(self.mox, "stat"):
            return ObjectInfo(key, int(self._do("get_size %s" % url, self.mox.get_size, url)), "")
        st = self._do("stat %s" % url, self.mox.stat, url)
        return ObjectInfo(key, int(st.length), "mtime:%d" % int(st.mtime_nsec))

    def download(self, bucket: str, key: str, path: str, size: Optional[int] = None) -> None:
        """Copy one object to ``path`` through a temp file (``path`` is absent or complete; ``size`` unused)."""
        with atomic_file(path) as tmp:
            self._do("copy %s" % _url(bucket, key), self.mox.copy, _url(bucket, key), tmp)

    def read_text(self, bucket: str, key: str) -> Optional[str]:
        """A small object's text, or None if it does not exist."""
        if self.head(bucket, key) is None:
            return None
        data = self._do("read %s" % _url(bucket, key), self.mox.read, _url(bucket, key), binary=True)
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)

    def upload(self, path: str, bucket: str, key: str) -> None:
        """Copy one local file to ``obs://bucket/key``."""
        self._do("copy to %s" % _url(bucket, key), self.mox.copy, path, _url(bucket, key))

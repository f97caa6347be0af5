"""Storage: ``obs://`` inputs are copied into a local cache for TensorFlow, and the run dir is mirrored out.

TensorFlow's gfile cannot open ``obs://``, so all TF I/O stays local:

* ``localize(uri, cfg.storage, kind)`` downloads a data set tree, a single file or a checkpoint once
  (files already present with the same size/ETag are skipped) and returns the local path;
* ``RunSync(output_url, run_dir, store)`` uploads the run dir (``push``), a checkpoint in a safe order
  (``push_checkpoint``: data files, then ``.index``, then the ``checkpoint`` state file) and pulls the
  newest complete checkpoint back for ``resume=true`` (``pull_latest_checkpoint``).
"""

import contextlib
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

from tqdm import tqdm

from pwcflow.errors import UserError
from pwcflow.runtime.obs import (
    ENV_ENDPOINT,
    ObjectInfo,
    ObsStore,
    check_no_secrets,
    is_remote,
    join_key,
    parse_obs_uri,
    require_credentials,
)

__all__ = ["ObsStore", "Storage", "RunSync", "from_config", "is_remote", "localize", "parse_obs_uri",
           "default_cache_dir"]

log = logging.getLogger(__name__)

Storage = ObsStore  # the name the runner uses; local storage is simply ``None``
KINDS = ("dataset", "checkpoint", "file")
STATE_FILE = "checkpoint"
LAST_FILES = (STATE_FILE, "best.json")  # pointers: uploaded after everything they may point at
_CKPT_PART = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")
_BAR_MIN_BYTES = 32 << 20


def _get(cfg, key: str, default=None):
    """``cfg.key`` for a DictConfig, a dict or None, with ``default`` for absent/null values."""
    value = cfg.get(key, None) if cfg is not None else None
    return default if value is None else value


def default_cache_dir() -> str:
    """``/cache/pwcflow`` on ModelArts (its large local disk), else ``~/.cache/pwcflow``."""
    if os.path.isdir("/cache") and os.access("/cache", os.W_OK):
        return "/cache/pwcflow"
    return os.path.join(os.path.expanduser("~"), ".cache", "pwcflow")


def cache_root(cfg_storage) -> str:
    """The configured cache dir (``storage.cache_dir``), or ``default_cache_dir()``."""
    return os.path.abspath(os.path.expanduser(str(_get(cfg_storage, "cache_dir", default_cache_dir()))))


def from_config(cfg_storage) -> Optional[ObsStore]:
    """An ``ObsStore`` for ``storage=obs`` or an ``obs://`` ``storage.output_url``; None when all is local."""
    check_no_secrets(cfg_storage)
    if _get(cfg_storage, "name", "local") != "obs" and not is_remote(_get(cfg_storage, "output_url", "")):
        return None
    return _build(cfg_storage)


def run_sync(cfg_storage, run_dir: str) -> Optional["RunSync"]:
    """A ``RunSync`` when ``storage.output_url`` is ``obs://``/``s3://``; None for a local or no output_url.

    A local output_url (ModelArts' new-style ``--train_url``) is the run dir itself (see ``cli.modelarts_argv``),
    so ``storage=obs`` with it needs no OBS client.
    """
    out = _get(cfg_storage, "output_url")
    if not out or os.path.abspath(os.path.expanduser(str(out))) == os.path.abspath(run_dir):
        return None
    if not is_remote(str(out)):
        raise UserError("storage.output_url must be an obs:// or s3:// URI, got %r: to write the run into a local "
                        "folder, set hydra.run.dir=%s (ModelArts' local --train_url does that)" % (str(out), out))
    return RunSync(str(out), run_dir, _build(cfg_storage))


def _build(cfg_storage):
    """The client: ``moxing.file`` when Huawei's moxing is importable (ModelArts), else esdk-obs-python built
    from config (endpoint, region, ...) and the environment (credentials; ``OBS_ENDPOINT`` or ``S3_ENDPOINT``)."""
    check_no_secrets(cfg_storage)
    from pwcflow.runtime import moxing_io

    mox = moxing_io.moxing_file()
    if mox is not None:
        return moxing_io.MoxingStore(mox, workers=_get(cfg_storage, "workers", 8), cache_dir=cache_root(cfg_storage))
    region = _get(cfg_storage, "region")
    endpoint = _get(cfg_storage, "endpoint") or os.environ.get(ENV_ENDPOINT) or os.environ.get("S3_ENDPOINT")
    if not endpoint and region:
        endpoint = "https://obs.%s.myhuaweicloud.com" % region
    require_credentials()
    if not endpoint:
        raise UserError("no OBS endpoint: set storage.endpoint=https://obs.REGION.myhuaweicloud.com, "
                        "storage.region=REGION or the environment variable %s" % ENV_ENDPOINT)
    return ObsStore(endpoint, region=region, path_style=_get(cfg_storage, "path_style", False),
                     signature=_get(cfg_storage, "signature", "obs"), retries=_get(cfg_storage, "retries", 5),
                     backoff_s=_get(cfg_storage, "backoff_s", 1.0), workers=_get(cfg_storage, "workers", 8),
                     cache_dir=cache_root(cfg_storage))


# -- sync in ----------------------------------------------------------------------------------------------
def localize(uri_or_path: str, cfg_storage=None, kind: str = "dataset", store: Optional[ObsStore] = None) -> str:
    """Return a local path for ``uri_or_path``: local paths unchanged, ``obs://`` ones downloaded to the cache.

    ``kind``: ``dataset`` (a prefix = directory tree, or one object), ``file`` (one object) or
    ``checkpoint`` (a prefix such as ``obs://b/run/pwcnet.ckpt-1000``, or a directory / run dir with a
    ``checkpoint`` state file; returns the local prefix or directory).
    """
    if kind not in KINDS:
        raise ValueError("kind must be one of %s, got %r" % (KINDS, kind))
    if uri_or_path is None or not is_remote(str(uri_or_path)):
        return uri_or_path
    uri = str(uri_or_path)
    bucket, key = parse_obs_uri(uri)
    own = store is None
    store = store or _build(cfg_storage)
    cache = store.cache_dir or cache_root(cfg_storage)
    try:
        with _locked(cache, bucket):
            if kind == "checkpoint":
                return _localize_checkpoint(store, cache, bucket, key, uri)
            return _localize_tree(store, cache, bucket, key, uri, single=(kind == "file"))
    finally:
        if own:
            store.close()


def local_path(cache: str, bucket: str, key: str) -> str:
    """Where ``obs://bucket/key`` lives in the cache: ``<cache>/obs/<bucket>/<key>``."""
    base = os.path.join(cache, "obs", bucket)
    path = os.path.normpath(os.path.join(base, *[p for p in key.split("/") if p]))
    if path != base and not path.startswith(base + os.sep):
        raise UserError("refusing OBS key %r: it points outside the cache dir" % key)
    return path


def _localize_tree(store: ObsStore, cache: str, bucket: str, key: str, uri: str, single: bool) -> str:
    """Download one object (``single``) or everything under ``key/``; return the local file or dir."""
    key = key.rstrip("/")
    objects = [] if single else [o for o in store.list(bucket, key + "/" if key else "") if not o.key.endswith("/")]
    if not objects:
        one = store.head(bucket, key) if key else None
        if one is None:
            store.check_bucket(bucket)  # a missing bucket is named as such
            raise UserError("nothing found at %s (no object and no objects under it)" % uri)
        objects = [one]
    _download_all(store, cache, bucket, objects, "obs://%s/%s" % (bucket, key))
    return local_path(cache, bucket, key)


def _localize_checkpoint(store: ObsStore, cache: str, bucket: str, key: str, uri: str) -> str:
    """Download a checkpoint given as a prefix, or a directory's current checkpoint; return the local path."""
    key = _CKPT_PART.sub("", key.rstrip("/"))
    parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    files = _complete_checkpoint(_children(store, bucket, parent, key + "."), key)
    if files:
        _download_all(store, cache, bucket, files, uri)
        return local_path(cache, bucket, key)
    for sub in ("checkpoints/best", "checkpoints", ""):  # the order checkpoint.resolve() looks in
        dir_key = join_key(key, sub)
        state = store.read_text(bucket, join_key(dir_key, STATE_FILE))
        if state is None:
            continue
        found = _latest_complete(_children(store, bucket, dir_key + "/" if dir_key else ""), state)
        if found:
            prefix_key, files = found
            local_dir = local_path(cache, bucket, dir_key)
            _download_all(store, cache, bucket, files, uri)
            _write_state(local_dir, os.path.basename(prefix_key))
            return local_path(cache, bucket, key)
    raise UserError("no checkpoint found at %s (expected PREFIX.index or a directory with a 'checkpoint' file)"
                    % uri)


def _children(store: ObsStore, bucket: str, dir_prefix: str, prefix: Optional[str] = None) -> Dict[str, ObjectInfo]:
    """Objects directly inside ``dir_prefix`` (no deeper '/'), optionally narrowed to keys starting ``prefix``."""
    out = {}
    for obj in store.list(bucket, prefix or dir_prefix):
        if "/" not in obj.key[len(dir_prefix):]:
            out[obj.key] = obj
    return out


def _complete_checkpoint(objects: Dict[str, ObjectInfo], prefix_key: str) -> List[ObjectInfo]:
    """The files of checkpoint ``prefix_key`` if its ``.index`` and every data shard are there, else []."""
    data = [k for k in objects if k.startswith(prefix_key + ".data-")]
    if prefix_key + ".index" not in objects or not data:
        return []
    shards = int(re.search(r"-of-(\d+)$", data[0]).group(1))
    need = ["%s.data-%05d-of-%05d" % (prefix_key, i, shards) for i in range(shards)]
    if any(k not in objects for k in need):
        return []
    extra = [prefix_key + ".meta"] if prefix_key + ".meta" in objects else []
    return [objects[k] for k in need + extra + [prefix_key + ".index"]]


def _step(prefix_key: str) -> int:
    """The global step at the end of a checkpoint prefix (``-1`` when there is none)."""
    match = re.search(r"-(\d+)$", prefix_key)
    return int(match.group(1)) if match else -1


def _latest_complete(objects: Dict[str, ObjectInfo], state: Optional[str] = None
                     ) -> Optional[Tuple[str, List[ObjectInfo]]]:
    """The checkpoint named by ``state`` (a ``checkpoint`` file's text) if complete, else the newest complete one."""
    prefixes = sorted((k[:-len(".index")] for k in objects if k.endswith(".index")), key=lambda p: (_step(p), p))
    if state:
        match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', state, re.MULTILINE)
        named = os.path.basename(match.group(1).replace("\\", "/")) if match else None
        prefixes.sort(key=lambda p: os.path.basename(p) == named)  # stable: the named one last
    for prefix_key in reversed(prefixes):
        files = _complete_checkpoint(objects, prefix_key)
        if files:
            return prefix_key, files
    return None


def _write_state(ckpt_dir: str, basename: str) -> None:
    """Point a local ``checkpoint`` state file at ``basename`` (relative, so the dir can move)."""
    os.makedirs(ckpt_dir, exist_ok=True)
    text = 'model_checkpoint_path: "%s"\nall_model_checkpoint_paths: "%s"\n' % (basename, basename)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=ckpt_dir)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, os.path.join(ckpt_dir, STATE_FILE))


def _download_all(store: ObsStore, cache: str, bucket: str, objects: List[ObjectInfo], what: str) -> List[str]:
    """Download the objects not already in the cache (same size and ETag); return their local paths."""
    manifest_path = os.path.join(cache, ".manifests", hashlib.sha1(bucket.encode()).hexdigest()[:16] + ".json")
    manifest = _load_manifest(manifest_path)
    known = dict(manifest)
    todo = [(o, local_path(cache, bucket, o.key)) for o in objects]
    todo = [(o, path) for o, path in todo if not _up_to_date(path, o, manifest)]
    if not todo:
        if manifest != known:  # files verified by MD5 this time: remember them
            _save_manifest(manifest_path, manifest)
        log.info("%s: %d files already in the cache %s", what, len(objects), cache)
        return []
    total = sum(o.size for o, _ in todo)
    log.info("%s: downloading %d of %d files (%.1f MB) to %s", what, len(todo), len(objects), total / 1e6, cache)
    try:
        with _bar(total, "download " + what) as bar:
            for obj, path in _parallel(store, todo, lambda item: store.download(bucket, item[0].key, item[1])):
                manifest[obj.key] = [obj.size, obj.etag, os.stat(path).st_mtime_ns]
                bar.update(obj.size)
    finally:
        _save_manifest(manifest_path, manifest)
    return [path for _, path in todo]


def _up_to_date(path: str, obj: ObjectInfo, manifest: Dict[str, list]) -> bool:
    """True if ``path`` holds ``obj``: same size, and the same ETag (recorded earlier, or the file's MD5)."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    if stat.st_size != obj.size:
        return False
    seen = manifest.get(obj.key)
    if seen and seen[:2] == [obj.size, obj.etag] and seen[2] == stat.st_mtime_ns:
        return True
    if re.match(r"^[0-9a-f]{32}$", obj.etag or "") and _md5(path) != obj.etag:
        return False  # a single-part ETag is the MD5; multipart ETags cannot be checked locally: trust the size
    manifest[obj.key] = [obj.size, obj.etag, stat.st_mtime_ns]
    return True


def _md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _load_manifest(path: str) -> Dict[str, list]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_manifest(path: str, manifest: Dict[str, list]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh)
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(cache: str, bucket: str) -> Iterator[None]:
    """Serialise syncs from one bucket across processes (e.g. one per Ascend card on a ModelArts node).

    The first process downloads; the others then find the files in the cache. It also guards the
    bucket's manifest (``<cache>/.manifests``), which records the ETag each cached file was fetched with.
    """
    folder = os.path.join(cache, ".locks")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, hashlib.sha1(bucket.encode()).hexdigest()[:16] + ".lock"), "w") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover (not POSIX)
            yield
            return
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _bar(total: int, desc: str) -> tqdm:
    """A byte progress bar (hidden for small transfers, so per-checkpoint pushes do not flood the log, and when
    stderr is not a terminal, so a file-captured log gets no carriage-return frames)."""
    return tqdm(total=total, unit="B", unit_scale=True, desc=desc, mininterval=1.0,
                disable=total < _BAR_MIN_BYTES or not sys.stderr.isatty())


def _parallel(store: ObsStore, items: List[tuple], fn) -> Iterator[tuple]:
    """Run ``fn(item)`` on ``store.workers`` threads; yield each item once it succeeded; re-raise a failure."""
    if store.workers <= 1 or len(items) <= 1:
        for item in items:
            fn(item)
            yield item
        return
    with ThreadPoolExecutor(max_workers=store.workers) as pool:
        futures = {pool.submit(fn, item): item for item in items}
        try:
            for future in as_completed(futures):
                future.result()
                yield futures[future]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except OSError:
        return None


# -- sync out ----------------------------------------------------------------------------------------------
def _upload_rank(rel: str) -> int:
    """Upload order: data and other files, then checkpoint ``.index`` files, then pointer files."""
    name = os.path.basename(rel)
    return 2 if name in LAST_FILES else 1 if name.endswith(".index") else 0


class RunSync:
    """Mirror a local run dir to an ``obs://`` output prefix, checkpoint-safe, and pull checkpoints back."""

    def __init__(self, output_url: str, run_dir: str, store: Optional[ObsStore]) -> None:
        if not is_remote(str(output_url)):
            raise UserError("storage.output_url must be an obs://bucket/prefix URI (or null to keep outputs only "
                            "in the run dir), got %r" % str(output_url))
        self.bucket, key = parse_obs_uri(output_url)
        if store is None:
            raise ValueError("RunSync needs an ObsStore: build it with storage.from_config(cfg.storage)")
        self.store, self.prefix = store, key.strip("/")
        self.output_url = "obs://%s/%s" % (self.bucket, self.prefix) if self.prefix else "obs://%s" % self.bucket
        self.run_dir = os.path.abspath(run_dir)
        self._sent: Dict[str, Tuple[int, int]] = {}
        self._remote: Optional[Dict[str, ObjectInfo]] = None
        store.check_bucket(self.bucket)

    def key_for(self, rel: str) -> str:
        """The object key of a run-dir-relative path."""
        return join_key(self.prefix, rel.replace(os.sep, "/"))

    def push(self, paths: Optional[Iterable[str]] = None) -> List[str]:
        """Upload changed files of the run dir (or of ``paths``: files/dirs in it); return their relative paths."""
        rels = self._walk([self.run_dir] if paths is None else list(paths))
        return self._upload([rel for rel in rels if self._changed(rel)])

    def push_checkpoint(self, prefix: str) -> List[str]:
        """Upload checkpoint ``prefix`` (data files, ``.index``, then the dir's ``checkpoint`` file last)."""
        prefix = os.path.abspath(prefix)
        folder, stem = os.path.split(prefix)
        names = [n for n in os.listdir(folder) if n.startswith(stem + ".") and _CKPT_PART.search(n[len(stem):])]
        if stem + ".index" not in names:
            raise UserError("checkpoint %s is incomplete: %s.index is missing" % (prefix, stem))
        names += [STATE_FILE] if os.path.isfile(os.path.join(folder, STATE_FILE)) else []
        rels = [self._rel(os.path.join(folder, n)) for n in names]
        return self._upload([rel for rel in rels if self._changed(rel)])

    def pull_latest_checkpoint(self, local_ckpt_dir: str) -> Optional[str]:
        """Download the newest complete checkpoint under the output prefix; return its local prefix (or None).

        ``local_ckpt_dir``'s place in the run dir (default ``checkpoints``) names the remote folder to search.
        """
        local_ckpt_dir = os.path.abspath(local_ckpt_dir)
        rel_dir = os.path.relpath(local_ckpt_dir, self.run_dir)
        if rel_dir.startswith(os.pardir) or rel_dir == os.curdir:
            rel_dir = "checkpoints"
        dir_key = self.key_for(rel_dir)
        found = _latest_complete(_children(self.store, self.bucket, dir_key + "/"))
        if not found:
            log.info("no complete checkpoint under obs://%s/%s: starting from scratch", self.bucket, dir_key)
            return None
        prefix_key, files = found
        todo = [(o, os.path.join(local_ckpt_dir, os.path.basename(o.key))) for o in files]
        os.makedirs(local_ckpt_dir, exist_ok=True)
        with _bar(sum(o.size for o in files), "resume obs://%s/%s" % (self.bucket, prefix_key)) as bar:
            fetch = lambda item: self.store.download(self.bucket, item[0].key, item[1])  # noqa: E731
            for obj, path in _parallel(self.store, todo, fetch):
                bar.update(obj.size)
                if path.startswith(self.run_dir + os.sep):
                    stat = os.stat(path)
                    self._sent[self._rel(path)] = (stat.st_size, stat.st_mtime_ns)
        _write_state(local_ckpt_dir, os.path.basename(prefix_key))
        log.info("resuming from obs://%s/%s", self.bucket, prefix_key)
        return os.path.join(local_ckpt_dir, os.path.basename(prefix_key))

    def pull(self, paths: Iterable[str]) -> List[str]:
        """Download run-dir-relative files (e.g. an earlier ``metrics.jsonl`` on resume) that exist in OBS."""
        got = []
        for rel in paths:
            rel = self._rel(rel)
            obj = self.store.head(self.bucket, self.key_for(rel))
            if obj is not None:
                path = os.path.join(self.run_dir, rel)
                self.store.download(self.bucket, obj.key, path)
                stat = os.stat(path)
                self._sent[rel] = (stat.st_size, stat.st_mtime_ns)
                got.append(rel)
        return got

    # -- helpers ------------------------------------------------------------------------------------------
    def _rel(self, path: str) -> str:
        path = os.path.abspath(path if os.path.isabs(path) else os.path.join(self.run_dir, path))
        rel = os.path.relpath(path, self.run_dir)
        if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
            raise ValueError("%s is not inside the run dir %s" % (path, self.run_dir))
        return rel

    def _walk(self, paths: List[str]) -> List[str]:
        """Run-dir-relative files under ``paths``, skipping temp files of atomic writes."""
        out = []
        for path in paths:
            path = os.path.abspath(path if os.path.isabs(path) else os.path.join(self.run_dir, path))
            if os.path.isfile(path):
                out.append(self._rel(path))
                continue
            for folder, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".tmp-"))
                out += [self._rel(os.path.join(folder, f)) for f in sorted(files) if not f.startswith(".tmp-")]
        return out

    def _changed(self, rel: str) -> bool:
        """True unless this file was uploaded unchanged before (by us, or already in OBS with the same MD5)."""
        try:
            stat = os.stat(os.path.join(self.run_dir, rel))
        except OSError:
            return False  # vanished since the walk (e.g. an old checkpoint removed by max_to_keep)
        mark = (stat.st_size, stat.st_mtime_ns)
        if self._sent.get(rel) == mark:
            return False
        if self._remote is None:
            self._remote = {o.key: o for o in self.store.list(self.bucket, self.prefix + "/" if self.prefix else "")}
        remote = self._remote.pop(self.key_for(rel), None)
        if remote and remote.size == stat.st_size and remote.etag == _md5(os.path.join(self.run_dir, rel)):
            self._sent[rel] = mark
            return False
        return True

    def _upload(self, rels: List[str]) -> List[str]:
        """Upload ``rels`` in three waves (data, ``.index``, pointer files), each wave in parallel."""
        done = []
        for rank in (0, 1, 2):
            wave = [(rel, _stat(os.path.join(self.run_dir, rel))) for rel in rels if _upload_rank(rel) == rank]
            wave = [(rel, stat) for rel, stat in wave if stat is not None]  # skip files removed meanwhile
            total = sum(st.st_size for _, st in wave)
            with _bar(total, "upload to %s" % self.output_url) as bar:
                for rel, stat in _parallel(self.store, wave, lambda item: self.store.upload(
                        os.path.join(self.run_dir, item[0]), self.bucket, self.key_for(item[0]))):
                    self._sent[rel] = (stat.st_size, stat.st_mtime_ns)
                    done.append(rel)
                    bar.update(stat.st_size)
        if done:
            log.info("uploaded %d files to %s", len(done), self.output_url)
        return done

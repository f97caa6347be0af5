"""The local data cache: ``obs://`` inputs copied once for TensorFlow (gfile cannot open ``obs://``).

``localize(uri, cfg.storage, kind)`` downloads a data set tree, a single file or a checkpoint once
(files already present with the same size/ETag are skipped) and returns the local path. One lock per
bucket serialises processes sharing the cache; a manifest remembers the ETag each file came with.
"""

import contextlib
import hashlib
import json
import logging
import os
import re
from typing import Dict, Iterator, List, Optional, Tuple

from pwcflow.config.groups import StorageConfig
from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.files.atomic import atomic_write_json
from pwcflow.storage.client import _bar, _md5, _parallel, build, cache_root
from pwcflow.storage.obs import ObjectInfo, ObsStore, is_remote, join_key, parse_obs_uri

log = logging.getLogger("pwcflow.storage")

KINDS = ("dataset", "checkpoint", "file")


def localize(uri_or_path: str, cfg_storage: Optional[StorageConfig] = None, kind: str = "dataset",
             store: Optional[ObsStore] = None) -> str:
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
    store = store or build(cfg_storage)
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
    key = checkpoint.strip_part(key.rstrip("/"))
    parent = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
    objects = children(store, bucket, parent, key + ".")
    files = [objects[k] for k in checkpoint.complete_files(objects, key)]
    if files:
        _download_all(store, cache, bucket, files, uri)
        return local_path(cache, bucket, key)
    for sub in checkpoint.RESOLVE_ORDER:
        dir_key = join_key(key, sub)
        state = store.read_text(bucket, join_key(dir_key, checkpoint.STATE_FILE))
        if state is None:
            continue
        found = latest_complete(children(store, bucket, dir_key + "/" if dir_key else ""), state)
        if found:
            prefix_key, files = found
            local_dir = local_path(cache, bucket, dir_key)
            _download_all(store, cache, bucket, files, uri)
            os.makedirs(local_dir, exist_ok=True)
            checkpoint.write_state(local_dir, [prefix_key])
            return local_path(cache, bucket, key)
    raise UserError("no checkpoint found at %s (expected PREFIX.index or a directory with a 'checkpoint' file)"
                    % uri)


def children(store: ObsStore, bucket: str, dir_prefix: str, prefix: Optional[str] = None) -> Dict[str, ObjectInfo]:
    """Objects directly inside ``dir_prefix`` (no deeper '/'), optionally narrowed to keys starting ``prefix``."""
    out = {}
    for obj in store.list(bucket, prefix or dir_prefix):
        if "/" not in obj.key[len(dir_prefix):]:
            out[obj.key] = obj
    return out


def latest_complete(objects: Dict[str, ObjectInfo], state: Optional[str] = None
                    ) -> Optional[Tuple[str, List[ObjectInfo]]]:
    """The checkpoint named by ``state`` (a ``checkpoint`` file's text) if complete, else the newest complete one."""
    prefixes = [k[:-len(".index")] for k in objects if k.endswith(".index")]
    for prefix_key in checkpoint.newest_first(prefixes, checkpoint.named_in_state(state)):
        files = checkpoint.complete_files(objects, prefix_key)
        if files:
            return prefix_key, [objects[k] for k in files]
    return None


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
    """True if ``path`` holds ``obj``: same size, and the same ETag (recorded earlier, or the file's MD5); an
    object without an ETag is never taken from the cache."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    if stat.st_size != obj.size or not obj.etag:
        return False  # no ETag (no version): the size alone cannot tell a changed object, fetch it again
    seen = manifest.get(obj.key)
    if seen and seen[:2] == [obj.size, obj.etag] and seen[2] == stat.st_mtime_ns:
        return True
    if re.match(r"^[0-9a-f]{32}$", obj.etag):
        if _md5(path) != obj.etag:
            return False  # a single-part ETag is the MD5
    elif seen and seen[1] != obj.etag:
        return False  # changed since this file was fetched (a multipart ETag, or moxing's mtime version)
    # else a multipart ETag that cannot be checked locally and no record: trust the size
    manifest[obj.key] = [obj.size, obj.etag, stat.st_mtime_ns]
    return True


def _load_manifest(path: str) -> Dict[str, list]:
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def _save_manifest(path: str, manifest: Dict[str, list]) -> None:
    atomic_write_json(path, manifest, indent=None, sort_keys=False)


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



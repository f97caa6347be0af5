"""The local data cache: ``obs://`` inputs copied once for TensorFlow (gfile cannot open ``obs://``).

``localize(uri, cfg.storage, kind)`` downloads a data set tree, a single file or a checkpoint once
(files already present with the same size/ETag are skipped) and returns the local path. One lock per
bucket serialises processes sharing the cache; a manifest remembers the ETag each file came with.
A checkpoint may also be a registry name (``pwcflow/models.yaml``): ``localize_model`` fetches it once
(resumable, verified), records it in ``<cache>/models/NAME.json`` and later finds it there without the network.
"""

import contextlib
import dataclasses
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
from pwcflow.storage import registry
from pwcflow.storage.client import _bar, _md5, _parallel, build, cache_root
from pwcflow.storage.obs import ENV_ENDPOINT, ObjectInfo, ObsStore, is_remote, join_key, parse_obs_uri

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
    model = registry.lookup(uri_or_path) if kind == "checkpoint" else None
    if model is not None:
        return localize_model(model, cfg_storage, store)
    if kind == "checkpoint" and registry.looks_like_name(uri_or_path):
        raise UserError("checkpoint not found: %s (neither a path nor a published model name; python -m "
                        "pwcflow.models lists those)" % uri_or_path)
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


def localize_model(model: registry.Model, cfg_storage: Optional[StorageConfig] = None,
                   store: Optional[ObsStore] = None) -> str:
    """The local checkpoint prefix of registry model ``model``: from the cache when it is there (no network),
    else downloaded from its origin (anonymously without keys), verified and recorded."""
    cache = store.cache_dir if store is not None and store.cache_dir else cache_root(cfg_storage)
    found = registry.cached(model, cache)
    if found:
        log.info("model %s: %s (in the cache)", model.name, found)
        return found
    if model.origin is None:
        raise UserError("model %s is published for download by hand: get %s from %s into %s (or pass ckpt=PATH)"
                        % (model.name, model.file, model.page, os.path.join(cache, "models", model.name)))
    storage = _model_storage(model, cfg_storage, cache)
    try:
        local = localize(model.origin, storage, "checkpoint", store)
    except UserError as exc:
        raise UserError("model %s not downloaded from %s (offline, or the endpoint is wrong?): %s"
                        % (model.name, storage.endpoint or storage.region, exc))
    prefix = checkpoint.resolve(local)
    _verify_model(model, prefix)
    files = {name: os.path.getsize(os.path.join(os.path.dirname(prefix), name))
             for name in checkpoint.complete_files(os.listdir(os.path.dirname(prefix)), os.path.basename(prefix))}
    atomic_write_json(registry.record_path(cache, model.name),
                      {"origin": model.origin, "prefix": prefix, "files": files})
    log.info("model %s: downloaded and verified, %s", model.name, prefix)
    return prefix


def _model_storage(model: registry.Model, cfg_storage: Optional[StorageConfig], cache: str) -> StorageConfig:
    """The storage settings for ``model``'s bucket: its recorded endpoint/region over the configured ones."""
    from pwcflow.storage import moxing_io

    if cfg_storage is None:
        from pwcflow.config.compose import compose_group

        cfg_storage = compose_group("storage", "obs", {})
    endpoint = model.endpoint or cfg_storage.endpoint
    region = model.region or cfg_storage.region
    if not (endpoint or region or os.environ.get(ENV_ENDPOINT)) and moxing_io.moxing_file() is None:
        raise UserError("model %s: the region of OBS bucket %r is not published; set storage.region=REGION (the "
                        "bucket's, e.g. cn-north-4) or %s=https://obs.REGION.myhuaweicloud.com"
                        % (model.name, parse_obs_uri(model.origin)[0], ENV_ENDPOINT))
    return dataclasses.replace(
        cfg_storage, endpoint=endpoint, region=region, cache_dir=cache,
        signature=model.signature or cfg_storage.signature,
        path_style=cfg_storage.path_style if model.path_style is None else bool(model.path_style))


def _verify_model(model: registry.Model, prefix: str) -> None:
    """Recorded SHA-256 sums, then checkpoint integrity; a failing download is removed (the next try refetches)."""
    folder = os.path.dirname(prefix)
    try:
        for name, want in sorted(model.sha256.items()):
            got = _sha256(os.path.join(folder, name))
            if got != want:
                raise UserError("model %s: %s has SHA-256 %s, the registry records %s" % (model.name, name, got, want))
        checkpoint.verify(prefix)
    except UserError:
        for name in checkpoint.complete_files(os.listdir(folder), os.path.basename(prefix)) or []:
            os.remove(os.path.join(folder, name))
        raise


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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
            for obj, path in _parallel(store, todo, lambda item: _fetch(store, bucket, item[0], item[1])):
                manifest[obj.key] = [obj.size, obj.etag, os.stat(path).st_mtime_ns]
                bar.update(obj.size)
    finally:
        _save_manifest(manifest_path, manifest)
    return [path for _, path in todo]


def _fetch(store: ObsStore, bucket: str, obj: ObjectInfo, path: str) -> None:
    """Download one object (resumable) and check a single-part ETag (the MD5) against what arrived."""
    store.download(bucket, obj.key, path, size=obj.size)
    if re.match(r"^[0-9a-f]{32}$", obj.etag or "") and _md5(path) != obj.etag:
        os.remove(path)
        raise UserError("download of obs://%s/%s is corrupt (MD5 differs from the ETag): run again" % (bucket, obj.key))


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



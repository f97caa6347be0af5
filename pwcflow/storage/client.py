"""OBS client glue: an ``ObsStore`` from the ``storage`` config group, the cache dir, transfer helpers.

Shared by the data cache (``pwcflow.storage.cache``) and the run mirror (``pwcflow.storage.runsync``).
"""

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Iterator, List, Optional

from tqdm import tqdm

from pwcflow.config.groups import StorageConfig
from pwcflow.errors import UserError
from pwcflow.storage.obs import ENV_ENDPOINT, ObsStore, is_remote

_BAR_MIN_BYTES = 32 << 20


def default_cache_dir() -> str:
    """``/cache/pwcflow`` on ModelArts (its large local disk), else ``~/.cache/pwcflow``."""
    if os.path.isdir("/cache") and os.access("/cache", os.W_OK):
        return "/cache/pwcflow"
    return os.path.join(os.path.expanduser("~"), ".cache", "pwcflow")


def cache_root(cfg_storage: Optional[StorageConfig]) -> str:
    """The configured cache dir (``storage.cache_dir``), or ``default_cache_dir()`` where it is null."""
    configured = cfg_storage.cache_dir if cfg_storage is not None else None
    return os.path.abspath(os.path.expanduser(configured or default_cache_dir()))


def from_config(cfg_storage: StorageConfig) -> Optional[ObsStore]:
    """An ``ObsStore`` for ``storage=obs`` or an ``obs://`` ``storage.output_url``; None when all is local."""
    if cfg_storage.name != "obs" and not is_remote(cfg_storage.output_url or ""):
        return None
    return build(cfg_storage)


def build(cfg_storage: StorageConfig):
    """The client: ``moxing.file`` when Huawei's moxing is importable (ModelArts), else esdk-obs-python built
    from config (endpoint, region, ...) and the environment (credentials, anonymous without them;
    ``OBS_ENDPOINT`` or ``S3_ENDPOINT``).

    Credentials never reach here from the config: ``StorageConfig`` refuses keys that look like them."""
    from pwcflow.storage import moxing_io

    mox = moxing_io.moxing_file()
    if mox is not None:
        return moxing_io.MoxingStore(mox, workers=cfg_storage.workers, cache_dir=cache_root(cfg_storage))
    region = cfg_storage.region
    endpoint = cfg_storage.endpoint or os.environ.get(ENV_ENDPOINT) or os.environ.get("S3_ENDPOINT")
    if not endpoint and region:
        endpoint = "https://obs.%s.myhuaweicloud.com" % region
    if not endpoint:
        raise UserError("no OBS endpoint: set storage.endpoint=https://obs.REGION.myhuaweicloud.com, "
                        "storage.region=REGION or the environment variable %s" % ENV_ENDPOINT)
    return ObsStore(endpoint, region=region, path_style=cfg_storage.path_style, signature=cfg_storage.signature,
                    retries=cfg_storage.retries, backoff_s=cfg_storage.backoff_s, workers=cfg_storage.workers,
                    cache_dir=cache_root(cfg_storage))


def _md5(path: str) -> str:
    """Hex MD5 of a file (what OBS reports as a single-part ETag)."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


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

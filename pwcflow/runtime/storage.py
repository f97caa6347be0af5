"""Storage facade: ``obs://`` inputs are copied into a local cache for TensorFlow, and the run dir is mirrored out.

TensorFlow's gfile cannot open ``obs://``, so all TF I/O stays local. The work is split by concern:

* ``pwcflow.runtime.cache``: ``localize(uri, cfg.storage, kind)``, the local data cache and its lock;
* ``pwcflow.runtime.runsync``: ``RunSync(output_url, run_dir, store)``, the run mirror (checkpoint-safe
  upload order, newest complete checkpoint pulled back for ``resume=true``);
* ``pwcflow.runtime.remote``: ``from_config`` (an ``ObsStore`` from ``cfg.storage``), the cache dir;
* ``pwcflow.runtime.checkpoint``: checkpoint layout (names, state file, completeness).

This module keeps the names callers used before the split.
"""

from pwcflow.runtime.cache import KINDS, local_path, localize
from pwcflow.runtime.obs import ObsStore, is_remote, parse_obs_uri
from pwcflow.runtime.remote import build as _build
from pwcflow.runtime.remote import cache_root, default_cache_dir, from_config
from pwcflow.runtime.runsync import LAST_FILES, RunSync, _upload_rank, run_sync

__all__ = ["ObsStore", "Storage", "RunSync", "from_config", "is_remote", "localize", "parse_obs_uri",
           "default_cache_dir", "cache_root", "local_path", "KINDS", "LAST_FILES", "_build", "_upload_rank",
           "run_sync"]

Storage = ObsStore  # the name the runner uses; local storage is simply ``None``

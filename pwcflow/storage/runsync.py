"""The run mirror: a local run dir uploaded to an ``obs://`` output prefix, checkpoint-safe, and the newest
complete checkpoint pulled back for ``resume=true``.

Uploads go in waves: data and other files, then checkpoint ``.index`` files, then pointer files (the
``checkpoint`` state file, ``best.json``), so a reader of the mirror never sees a pointer to missing data.
"""

import json
import logging
import os
from typing import Dict, Iterable, List, Optional, Tuple

from pwcflow.config.groups import StorageConfig
from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.storage.cache import children, latest_complete
from pwcflow.storage.client import _bar, _md5, _parallel, _stat, build
from pwcflow.storage.obs import ObjectInfo, ObsStore, is_remote, join_key, parse_obs_uri

log = logging.getLogger("pwcflow.storage")

MA_OUTPUTS = "MA_OUTPUTS"  # new-style jobs: each output's local folder and the OBS folder it is uploaded to
LAST_FILES = (checkpoint.STATE_FILE, checkpoint.BEST_FILE)  # pointers: uploaded after everything they may point at


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
        names = [n for n in os.listdir(folder)
                 if n.startswith(stem + ".") and checkpoint.is_checkpoint_file(n[len(stem):])]
        if stem + ".index" not in names:
            raise UserError("checkpoint %s is incomplete: %s.index is missing" % (prefix, stem))
        state = checkpoint.STATE_FILE
        names += [state] if os.path.isfile(os.path.join(folder, state)) else []
        rels = [self._rel(os.path.join(folder, n)) for n in names]
        return self._upload([rel for rel in rels if self._changed(rel)])

    def remote_latest(self, local_ckpt_dir: str) -> Optional[Tuple[str, List[ObjectInfo]]]:
        """The newest complete checkpoint under the output prefix (its key and files), or None.

        ``local_ckpt_dir``'s place in the run dir (default ``checkpoints``) names the remote folder to search.
        """
        rel_dir = os.path.relpath(os.path.abspath(local_ckpt_dir), self.run_dir)
        if rel_dir.startswith(os.pardir) or rel_dir == os.curdir:
            rel_dir = "checkpoints"
        return latest_complete(children(self.store, self.bucket, self.key_for(rel_dir) + "/"))

    def pull_latest_checkpoint(self, local_ckpt_dir: str, newer_than: int = -1) -> Optional[str]:
        """Download the newest complete checkpoint under the output prefix if its step is above ``newer_than``;
        return its local prefix (or None)."""
        local_ckpt_dir = os.path.abspath(local_ckpt_dir)
        found = self.remote_latest(local_ckpt_dir)
        if not found or checkpoint.step_of(found[0]) <= newer_than:
            log.info("no newer complete checkpoint under %s: %s", self.output_url,
                     "starting from scratch" if newer_than < 0 else "keeping step %d" % newer_than)
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
        checkpoint.write_state(local_ckpt_dir, [prefix_key])
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


def platform_output(run_dir: str) -> Optional[str]:
    """The ``obs://`` folder a new-style ModelArts job uploads its local ``run_dir`` (train_url) to, from
    ``MA_OUTPUTS`` (``{"outputs": [{"parameter": {"label": "train_url", "value": LOCAL}, "data_source": {"obs":
    {"obs_url": "/bucket/path/"}}}]}``, ModelZoo ``FaceBoxes_ID1074_for_TensorFlow/.../my_env.log:79``); else None."""
    try:
        outputs = json.loads(os.environ.get(MA_OUTPUTS) or "{}").get("outputs") or []
    except (ValueError, AttributeError):
        log.warning("%s is not the JSON ModelArts sets: ignored", MA_OUTPUTS)
        return None
    for item in outputs if isinstance(outputs, list) else []:
        local = ((item or {}).get("parameter") or {}).get("value")
        remote = (((item or {}).get("data_source") or {}).get("obs") or {}).get("obs_url")
        if local and remote and os.path.abspath(str(local)) == os.path.abspath(run_dir):
            return "obs://" + str(remote).strip("/")
    return None


def platform_mirror(cfg_storage: StorageConfig, run_dir: str) -> Optional[RunSync]:
    """A pull-only ``RunSync`` on the OBS folder ModelArts uploads the local run dir to (``platform_output``);
    None when the run dir is not a job's train_url. pwcflow never uploads there: the platform does."""
    url = platform_output(run_dir)
    return RunSync(url, run_dir, build(cfg_storage)) if url else None


def run_sync(cfg_storage: StorageConfig, run_dir: str) -> Optional[RunSync]:
    """A ``RunSync`` when ``storage.output_url`` is ``obs://``/``s3://``; None for a local or no output_url.

    A local output_url (ModelArts' new-style ``--train_url``) is the run dir itself (see ``cli.modelarts_argv``),
    so ``storage=obs`` with it needs no OBS client.
    """
    out = cfg_storage.output_url
    if not out or os.path.abspath(os.path.expanduser(str(out))) == os.path.abspath(run_dir):
        return None
    if not is_remote(str(out)):
        raise UserError("storage.output_url must be an obs:// or s3:// URI, got %r: to write the run into a local "
                        "folder, set hydra.run.dir=%s (ModelArts' local --train_url does that)" % (str(out), out))
    return RunSync(str(out), run_dir, build(cfg_storage))

"""A training run's checkpoint policy: where checkpoints live, what a rerun resumes from, how it saves.

Only the chief writes. Saves are atomic (``checkpoint.save_atomic``) and mirrored to ``storage.output_url``
when one is set; a rerun resumes from the newest *intact* checkpoint of the run dir (a damaged one is
skipped with a warning), else from the run mirror's newest complete one.
"""

import logging
import os
from typing import Optional

from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.storage.runsync import RunSync
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.train")


class CheckpointPolicy:
    """``<run>/checkpoints`` (newest ``keep``) and ``<run>/checkpoints/best`` (one), mirrored by ``sync``."""

    def __init__(self, run_dir: str, keep: int, is_chief: bool, sync: Optional[RunSync], resume: bool) -> None:
        self.run_dir, self.keep, self.is_chief, self.sync, self.resume = run_dir, keep, is_chief, sync, resume
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        self.best_dir = os.path.join(self.ckpt_dir, "best")

    def find_resume(self) -> Optional[str]:
        """The checkpoint to resume from (None = fresh start); refuses a used run dir without ``resume``."""
        if self.is_chief:
            for folder in (self.ckpt_dir, self.best_dir, self.run_dir):
                checkpoint.remove_stale(folder, owned=True)
        # strict: never start afresh over a run whose checkpoints are all damaged
        latest = checkpoint.latest_intact(self.ckpt_dir, strict=self.resume)
        if latest is None and self.sync is not None and self.resume:
            latest = self.sync.pull_latest_checkpoint(self.ckpt_dir)
            if latest:
                self.sync.pull(["metrics.json"])
        if latest is None and self.is_chief:
            log.info("no checkpoint in %s: training starts at step 0", self.ckpt_dir)
        if latest and not self.resume:
            raise UserError("run dir %s already has checkpoints: rerun with resume=true or pick another run_name"
                            % self.run_dir)
        return latest

    def save(self, sess: tf.Session, saver: tf.train.Saver, step: int) -> Optional[str]:
        """Atomic checkpoint (chief only), keeping the newest ``keep``; mirror it and the run dir."""
        if not self.is_chief:
            return None
        prefix = checkpoint.save_atomic(sess, saver, self.ckpt_dir, step, self.keep)
        if self.sync is not None:
            self.sync.push_checkpoint(prefix)
            self.sync.push()
        return prefix

    def save_best(self, sess: tf.Session, saver: tf.train.Saver, step: int) -> str:
        """Replace the best checkpoint (mirrored with the next ``push``)."""
        return checkpoint.save_atomic(sess, saver, self.best_dir, step, keep=1)

    def discard_after(self, step: int) -> Optional[str]:
        """After a diverged step: drop newer checkpoints (chief); the newest kept one, or None."""
        return checkpoint.discard_after(self.ckpt_dir, step) if self.is_chief else None

    def push(self) -> None:
        """Mirror the run dir (chief only)."""
        if self.sync is not None and self.is_chief:
            self.sync.push()

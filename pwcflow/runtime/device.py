"""Session configuration per device profile (``device`` config group)."""

from omegaconf import DictConfig

from pwcflow.tf1 import tf


def session_config(dev: DictConfig) -> tf.ConfigProto:
    """A ``ConfigProto`` for ``cfg.device`` (CPU threads for now)."""
    cfg = tf.ConfigProto(allow_soft_placement=True)
    cfg.intra_op_parallelism_threads = int(dev.get("intra_op_threads", 0))
    cfg.inter_op_parallelism_threads = int(dev.get("inter_op_threads", 0))
    return cfg

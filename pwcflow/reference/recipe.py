"""The RECIPE.md weights: tfoptflow's variable list + one seeded numpy generator per variable.

``weights(variant)`` reproduces the reference's sha256 exactly (numpy only); ``write_checkpoint`` saves
them as a tfoptflow-named TF checkpoint.
"""

import hashlib
import os
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np

from pwcflow.errors import UserError
from pwcflow.reference import REF_DIR

SEED = 20261201
SPEC_SHA256 = {"sm": "6ee1b0ead26416587f2d623a2a6473d018c0894f05701dc91bf99103de47079e",
               "lg": "3f9de84aae63de20175e3e4bddbc8176d1dc473e78f400340ba40e570ff2c907"}
WEIGHTS_SHA256 = {"sm": "afbc36f66abccf07b19a3f19762e1392e56b6b57599426a4e8c9640304758a41",
                  "lg": "eb8f6ba166cdb6acad8b308c47bee81ad6a24355295322bb9824a06ec9955c52"}
MODEL_NAMES = {"sm": "sm-6-2", "lg": "lg-6-2"}


def spec_path(variant: str, ref_dir: str = REF_DIR) -> str:
    """``tfoptflow-<variant>-6-2-variables.txt`` in ``ref_dir``."""
    return os.path.join(ref_dir, "tfoptflow-%s-6-2-variables.txt" % variant)


def variables(variant: str, ref_dir: str = REF_DIR) -> List[Tuple[str, Tuple[int, ...]]]:
    """(name, shape) of tfoptflow's trainable variables, in creation order."""
    path = spec_path(variant, ref_dir)
    if not os.path.isfile(path):
        raise UserError("tfoptflow variable list not found: %s" % path)
    rows = []
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split()
        rows.append((name, tuple(int(d) for d in shape.split("x"))))
    return rows


def _value(index: int, name: str, shape: Tuple[int, ...]) -> np.ndarray:
    """One variable's recipe value (He-normal kernels, 0.01-scaled normal biases)."""
    rs = np.random.RandomState(SEED + index)
    if name.endswith("/bias"):
        return (rs.standard_normal(shape) * 0.01).astype(np.float32)
    if not name.endswith("/kernel"):
        raise UserError("recipe: variable %s is neither a kernel nor a bias" % name)
    kh, kw, a, b = shape
    fan_in = kh * kw * (b if name.startswith("pwcnet/upsample/") else a)
    return (rs.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def weights(variant: str, ref_dir: str = REF_DIR) -> "OrderedDict[str, np.ndarray]":
    """All recipe weights of ``variant`` ("sm" or "lg") by tfoptflow name, in spec order."""
    return OrderedDict((name, _value(i, name, shape)) for i, (name, shape) in enumerate(variables(variant, ref_dir)))


def sha256(values: Dict[str, np.ndarray]) -> str:
    """sha256 of the float32 little-endian C-order bytes, concatenated in order."""
    h = hashlib.sha256()
    for v in values.values():
        h.update(np.ascontiguousarray(v, dtype="<f4").tobytes())
    return h.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def write_checkpoint(values: Dict[str, np.ndarray], prefix: str) -> str:
    """Save ``values`` as a TF checkpoint with exactly these variable names; returns the prefix."""
    from pwcflow.tf1 import tf

    with tf.Graph().as_default(), tf.Session() as sess:
        tf_vars = [tf.get_variable(name, v.shape, tf.float32, tf.zeros_initializer()) for name, v in values.items()]
        sess.run(tf.variables_initializer(tf_vars))
        for var, value in zip(tf_vars, values.values()):
            var.load(value, sess)
        return tf.train.Saver(var_list={v.op.name: v for v in tf_vars}).save(sess, prefix, write_meta_graph=False)

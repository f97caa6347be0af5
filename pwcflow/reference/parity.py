"""pwcflow against tfoptflow's compact reference: forward flows and the training losses (RECIPE.md).

Used by the parity tests and by ``python -m pwcflow.doctor`` (forward only, on the chosen device).
"""

import json
import os
from typing import Dict, List, Optional

import numpy as np

from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model import losses
from pwcflow.model.pwcnet import ModelSpec, pwcnet
from pwcflow.model.spec import pad_to_multiple, to_input
from pwcflow.reference import REF_DIR, recipe
from pwcflow.tf1 import tf

SPECS = {"sm": ModelSpec("sm-6-2", dense=False, context_all_levels=False),
         "lg": ModelSpec("lg-6-2", dense=True, context_all_levels=True)}
LEVELS = (6, 5, 4, 3, 2)
GT_UV = (3.0, 2.0)  # frame 2 is frame 1 shifted by u=+3, v=+2
FLOW_ATOL = 1e-4    # px, final flow and every pyramid level
LOSS_RTOL = 1e-5    # losses before the step
STEP_RTOL = 1e-4    # loss after one Adam / SGD step
OPTIMIZERS = {"multiscale": ("total_after_one_adam_step", lambda: tf.train.AdamOptimizer(1e-4, 0.9, 0.999, 1e-8)),
              "robust": ("total_after_one_step", lambda: tf.train.GradientDescentOptimizer(1e-5))}


def _need(path: str) -> str:
    if not os.path.isfile(path):
        raise UserError("reference file not found: %s" % path)
    return path


def load_pair(ref_dir: str = REF_DIR) -> np.ndarray:
    """The reference pair as [1, 2, 120, 200, 3] float32 in [0, 1]."""
    img1, img2 = (flowio.read_image(_need(os.path.join(ref_dir, "pair_b_img%d.png" % i))) for i in (1, 2))
    return to_input(img1, img2)[None]


def expected(variant: str, ref_dir: str = REF_DIR) -> Dict[str, np.ndarray]:
    """tfoptflow's ``final`` and ``pyr6``..``pyr2`` flows."""
    with np.load(_need(os.path.join(ref_dir, variant, "expected.npz"))) as npz:
        return {k: npz[k] for k in npz.files}


def expected_losses(variant: str, ref_dir: str = REF_DIR) -> dict:
    """tfoptflow's ``losses.json`` (``multiscale`` and ``robust`` sections)."""
    with open(_need(os.path.join(ref_dir, variant, "losses.json"))) as f:
        return json.load(f)


def make_checkpoint(variant: str, folder: str, ref_dir: str = REF_DIR) -> str:
    """Write the recipe weights as ``folder/pwcnet.ckpt`` after checking their sha256; returns the prefix."""
    values = recipe.weights(variant, ref_dir)
    got = recipe.sha256(values)
    if got != recipe.WEIGHTS_SHA256[variant]:
        raise UserError("recipe weights of %s have sha256 %s, expected %s (numpy or variable list differs)"
                        % (variant, got, recipe.WEIGHTS_SHA256[variant]))
    os.makedirs(folder, exist_ok=True)
    return recipe.write_checkpoint(values, os.path.join(folder, "pwcnet.ckpt"))


def forward(variant: str, prefix: str, ref_dir: str = REF_DIR, session_config: Optional[tf.ConfigProto] = None
            ) -> Dict[str, np.ndarray]:
    """pwcflow's ``final`` (120x200) and padded pyramid flows on the reference pair."""
    predictor = FlowPredictor(SPECS[variant], prefix, session_config)
    try:
        flow, pyramid = predictor.predict_batch(load_pair(ref_dir), with_pyramid=True)
    finally:
        predictor.close()
    out = {"final": flow[0]}
    out.update(("pyr%d" % lvl, p[0]) for lvl, p in zip(LEVELS, pyramid))
    return out


def flow_differences(got: Dict[str, np.ndarray], want: Dict[str, np.ndarray]) -> Dict[str, float]:
    """max |got - want| in px per array (``final``, ``pyr6``..``pyr2``); a shape mismatch is an error."""
    diffs = {}
    for key in ["final"] + ["pyr%d" % lvl for lvl in LEVELS]:
        if key not in want:
            raise UserError("reference has no %r array" % key)
        if got[key].shape != want[key].shape:
            raise UserError("%s: pwcflow gives shape %s, the reference %s" % (key, got[key].shape, want[key].shape))
        diffs[key] = float(np.abs(got[key].astype(np.float64) - want[key]).max())
    return diffs


def ground_truth(shape) -> np.ndarray:
    """tfoptflow's ``adapt_y``: u=3, v=2 inside the frame, zeros in the padding; [1, Hp, Wp, 2]."""
    _, _, h, w, _ = shape
    gt = np.zeros((1, h + (-h) % 64, w + (-w) % 64, 2), np.float32)
    gt[:, :h, :w] = GT_UV
    return gt


def training_losses(variant: str, prefix: str, kind: str, ref_dir: str = REF_DIR) -> Dict[str, float]:
    """``loss_unreg``, ``weight_decay``, ``total`` and ``total_after`` one step, as tfoptflow trains."""
    x = load_pair(ref_dir)
    with tf.Graph().as_default(), tf.Session() as sess:
        gt = tf.constant(ground_truth(x.shape))
        _, pyr = pwcnet(tf.constant(pad_to_multiple(x, 64, (2, 3))), SPECS[variant])
        order, eps, q = losses.KINDS[kind]
        unreg, _ = losses.pyramid_loss(gt, pyr, order, eps, q)
        variables = checkpoint.model_variables()
        reg = losses.weight_decay(variables, 0.0004)
        total = unreg + reg
        step = OPTIMIZERS[kind][1]().minimize(total, var_list=variables)
        sess.run(tf.global_variables_initializer())
        checkpoint.restore(sess, prefix, variables, SPECS[variant].name)
        u, r, t = sess.run([unreg, reg, total])
        sess.run(step)
        after = sess.run(total)
    return {"loss_unreg": float(u), "weight_decay": float(r), "total": float(t), "total_after": float(after)}


def loss_expectations(variant: str, kind: str, ref_dir: str = REF_DIR) -> Dict[str, float]:
    """The reference numbers matching ``training_losses``' keys."""
    ref = expected_losses(variant, ref_dir)[kind]
    return {"loss_unreg": ref["loss_unreg"], "weight_decay": ref["weight_decay"], "total": ref["total"],
            "total_after": ref[OPTIMIZERS[kind][0]]}


def variants_present(ref_dir: str) -> List[str]:
    """Which of sm/lg the reference folder holds."""
    return [v for v in SPECS if os.path.isfile(os.path.join(ref_dir, v, "expected.npz"))]

"""tfoptflow's training losses: multiscale (L2, pre-training) and robust (L1, q=0.4, fine-tuning).

Per level l (6..2) with weight alpha_l: GT_l = legacy-bilinear resize of the (padded) GT to the
level size divided by H/h_l; level_loss = batch mean of the per-image SUM of per-pixel norms;
total += alpha_l * (level_loss + eps) ** q. The power applies to the per-level sum (tfoptflow),
not per pixel as in the paper. An optional validity mask (KITTI) zeroes invalid pixels; with an
all-ones mask the numbers are tfoptflow's exactly.
"""

from typing import List, Optional, Sequence, Tuple

from pwcflow.model import ops
from pwcflow.model.spec import LOSS_KINDS
from pwcflow.tf1 import tf

ALPHAS = (0.32, 0.08, 0.02, 0.01, 0.005)
KINDS = LOSS_KINDS  # norm order, epsilon, q
# Under the L2 norm's square root: tf.norm's gradient at a zero difference is 0/0 = NaN, which a pixel predicted
# exactly reaches (more often in bf16, whose 8-bit mantissa rounds small differences to 0: a bf16 demo run
# diverged at step 401). s + 1e-24 equals s in float32 for any s above ~1e-17, so losses are tfoptflow's bit for
# bit there; at s = 0 the gradient is 0.
NORM_EPS = 1e-24


def l2_norm(diff: tf.Tensor) -> tf.Tensor:
    """Per-pixel L2 norm over the last axis, with a finite gradient at zero (``NORM_EPS``)."""
    return tf.sqrt(tf.reduce_sum(tf.square(diff), axis=-1) + NORM_EPS)


def scaled_gt(gt: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Ground truth resized to ``like``'s level size and scaled into that level's pixel units."""
    size = tf.shape(like)[1:3]
    ratio = tf.cast(tf.shape(gt)[1], tf.float32) / tf.cast(size[0], tf.float32)
    return ops.resize_bilinear_legacy(gt, size) / ratio


def pyramid_loss(gt: tf.Tensor, flows: Sequence[tf.Tensor], norm_order: int, epsilon: float, q: float,
                 alphas: Sequence[float] = ALPHAS, valid: Optional[tf.Tensor] = None) -> Tuple[tf.Tensor, List]:
    """Weighted sum over pyramid levels (coarsest first); returns (total, per-level losses)."""
    total, levels = 0.0, []
    for alpha, flow in zip(alphas, flows):
        flow = tf.cast(flow, tf.float32)
        diff = scaled_gt(gt, flow) - flow
        norm = l2_norm(diff) if norm_order == 2 else tf.reduce_sum(tf.abs(diff), axis=3)
        if valid is not None:
            norm = norm * _subsample(valid, flow)
        level = tf.reduce_mean(tf.reduce_sum(norm, axis=(1, 2)))
        levels.append(level)
        total += alpha * tf.pow(level + epsilon, q)
    return total, levels


def _subsample(valid: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
    """Validity at a level: every (H/h)-th pixel, as the legacy resize picks them."""
    return tf.squeeze(tf.image.resize_nearest_neighbor(valid[..., None], tf.shape(like)[1:3]), axis=3)


def weight_decay(variables: Sequence[tf.Variable], gamma: float) -> tf.Tensor:
    """``gamma * sum(l2_loss(v))`` over all trainable variables, biases included (tfoptflow)."""
    return gamma * tf.add_n([tf.nn.l2_loss(v) for v in variables])


def epe(gt: tf.Tensor, flow: tf.Tensor, valid: Optional[tf.Tensor] = None) -> tf.Tensor:
    """Mean end-point error over (valid) pixels: tfoptflow's training EPE metric."""
    err = tf.norm(gt - tf.cast(flow, tf.float32), ord=2, axis=3)
    if valid is None:
        return tf.reduce_mean(err)
    return tf.reduce_sum(err * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)

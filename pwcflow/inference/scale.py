"""Large frames: predict at a reduced size and scale the flow back; what a frame size needs in memory.

``max_side``: frames whose longer side exceeds it are resized (area filter) so that side is ``max_side``,
the flow is predicted there, resized back (bilinear) and its u/v multiplied by the width/height ratios.
Nothing here imports TensorFlow (the exported-model path uses it too).
"""

import math
import os
from typing import Callable, Optional, Tuple

import cv2
import numpy as np

from pwcflow.errors import UserError

MARGIN = 1.0  # refuse only when the estimate alone exceeds what is available: "clearly does not fit"
# Peak RSS growth of one lg-6-2 forward on the CPU (TF 2.21) over the summed activations: 0.45 at 448x1024,
# 0.32 at 896x2048 (TensorFlow frees tensors once consumed); 0.5 keeps the estimate above both.
CALIBRATION = 0.5


def reduced_size(h: int, w: int, max_side: Optional[int]) -> Tuple[int, int]:
    """(h, w) scaled so the longer side is at most ``max_side`` (unchanged when it already is, or None)."""
    if not max_side or max(h, w) <= max_side:
        return h, w
    s = float(max_side) / max(h, w)
    return max(1, int(round(h * s))), max(1, int(round(w * s)))


def shrink(img: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``img`` resized to ``size`` (h, w) with the area filter (no aliasing when shrinking)."""
    if img.shape[:2] == tuple(size):
        return img
    return cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def restore_flow(flow: np.ndarray, h: int, w: int) -> np.ndarray:
    """A flow (h', w', 2) predicted at a reduced size -> (h, w, 2): resized bilinearly, u * w/w', v * h/h'."""
    fh, fw = flow.shape[:2]
    if (fh, fw) == (h, w):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= float(w) / fw
    out[..., 1] *= float(h) / fh
    return out


def predict_reduced(predict_batch: Callable[[np.ndarray], np.ndarray], x: np.ndarray, max_side: int) -> np.ndarray:
    """``predict_batch`` on a batch x [B, 2, H, W, 3] shrunk to ``max_side``, flows [B, H, W, 2] scaled back."""
    h, w = x.shape[2:4]
    size = reduced_size(h, w, max_side)
    small = np.stack([np.stack([shrink(np.ascontiguousarray(img), size) for img in pair]) for pair in x])
    return np.stack([restore_flow(np.ascontiguousarray(f), h, w) for f in predict_batch(small)])


def check_max_side(max_side: Optional[int], key: str = "max_side") -> Optional[int]:
    if max_side is not None and (not isinstance(max_side, int) or isinstance(max_side, bool) or max_side < 64):
        raise UserError("bad setting %s=%r: an integer of at least 64 (pixels), or null" % (key, max_side))
    return max_side


def estimate_bytes(h: int, w: int, dense: bool = True, batch: int = 1) -> int:
    """Bytes one forward pass at h x w (padded to 64) needs: every float32 activation summed over the pyramid,
    times ``CALIBRATION`` (what TensorFlow was measured to hold at its peak).

    Per level l (1/2^l of the padded frame): the feature pyramid of both frames (3 convs), the warped features,
    the 81-channel cost volume, the estimator's (dense: concatenated) inputs and outputs, the up-sampled flow
    and features; the context network at level 2.
    """
    from pwcflow.model.pwcnet import CONTEXT_LAYERS, ESTIMATOR_CHANNELS, PYRAMID_CHANNELS

    ph, pw = -(-h // 64) * 64, -(-w // 64) * 64
    total = ph * pw * 3 * 2
    for lvl, chans in enumerate(PYRAMID_CHANNELS, start=1):
        px = math.ceil(ph / 2 ** lvl) * math.ceil(pw / 2 ** lvl)
        total += px * 2 * 3 * chans
        if lvl < 2:
            continue
        base = 81 + (chans + 4 if lvl < 6 else 0)
        grown = [base + sum(ESTIMATOR_CHANNELS[:i]) for i in range(len(ESTIMATOR_CHANNELS) + 1)] if dense \
            else [base] + list(ESTIMATOR_CHANNELS)
        total += px * (chans + sum(grown) + sum(ESTIMATOR_CHANNELS) + 2 + 4)
        if lvl == 2:
            total += px * (sum(c for c, _ in CONTEXT_LAYERS) + 2)
    return int(total * 4 * batch * CALIBRATION)


def available_bytes() -> Optional[int]:
    """Host memory available now (``MemAvailable`` of /proc/meminfo), or None where that is unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fits(h: int, w: int, dense: bool, batch: int = 1, device: str = "cpu", what: str = "a pair") -> None:
    """One-line refusal before anything runs when the frame size clearly does not fit in host memory.

    Only on the CPU (the host's memory is the device's); ``PWCFLOW_MEMORY_BYTES`` overrides what is available."""
    if device != "cpu":
        return
    env = os.environ.get("PWCFLOW_MEMORY_BYTES")
    have = int(env) if env else available_bytes()
    need = estimate_bytes(h, w, dense, batch)
    if have is not None and need > MARGIN * have:
        side = max(64, int(max(h, w) * math.sqrt(have / float(need)) * 0.8) // 64 * 64)
        raise UserError("%s of %dx%d needs about %.1f GiB (estimate), %.1f GiB available: predict at a reduced "
                        "size with max_side=%d (or fewer pairs per batch)"
                        % (what, w, h, need / 2 ** 30, have / 2 ** 30, side))

"""Forward-backward consistency: occlusion masks and confidence from a forward and a backward flow.

A pixel ``x`` of frame 1 is visible in frame 2 when its forward flow ``f`` and the backward flow read at its
target, ``b(x + f)`` (bilinear), cancel out:

    |f + b(x+f)|^2 < alpha1 * (|f|^2 + |b(x+f)|^2) + alpha2        (Sundaram et al. 2010; UnFlow's defaults)

Pixels whose target leaves the frame count as occluded. The confidence is
``exp(-|f + b(x+f)|^2 / (alpha1 * (|f|^2 + |b(x+f)|^2) + alpha2))`` (1 = consistent, e^-1 at the threshold,
0 out of frame).
"""

from typing import Tuple

import cv2
import numpy as np

ALPHA1, ALPHA2 = 0.01, 0.5


def warp_backward(field: np.ndarray, flow: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``field`` (H, W, C) sampled bilinearly at ``x + flow(x)``; returns (sampled, target-inside-frame mask)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0].astype(np.float32), ys + flow[..., 1].astype(np.float32)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    sampled = cv2.remap(np.ascontiguousarray(field, np.float32), mx, my, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(field.shape), inside


def occlusion(forward: np.ndarray, backward: np.ndarray, alpha1: float = ALPHA1,
              alpha2: float = ALPHA2) -> Tuple[np.ndarray, np.ndarray]:
    """(occluded bool (H, W), confidence float32 (H, W) in [0, 1]) of frame 1's pixels."""
    f = np.asarray(forward, np.float32)
    b, inside = warp_backward(np.asarray(backward, np.float32), f)
    diff = ((f + b) ** 2).sum(-1)
    bound = alpha1 * ((f ** 2).sum(-1) + (b ** 2).sum(-1)) + alpha2
    occluded = ~((diff < bound) & inside)
    confidence = np.where(inside, np.exp(-diff / bound), 0.0).astype(np.float32)
    return occluded, confidence

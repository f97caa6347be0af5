"""Flow-correct training augmentation (tfoptflow's ``augment.py`` choices), deterministic given a RandomState.

Order, as in tfoptflow: random crop to the training size, then horizontal flip (u negated), vertical
flip (v negated) and, in ``heavy`` mode, a translation of frame 2 only (added to the flow) and a
centred zoom of both frames and the flow (flow multiplied by the zoom). Unlike tfoptflow, the zoom
is one exact affine warp, and pixels a zoom-out pads are marked invalid instead of supervised as
zero flow. There is no photometric augmentation, as in tfoptflow.
"""

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

import cv2
import numpy as np

from pwcflow.errors import UserError

MODES = ("none", "basic", "heavy")
Arrays = Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class AugmentSpec:
    """``mode`` none | basic (flips) | heavy (flips, translate, scale); probabilities and ranges as tfoptflow.

    ``translate = (p, f)``: with probability p shift frame 2 by up to f x (W, H); ``scale = (p, f)``: with
    probability p zoom everything by a factor in [1 - f, 1 + f].
    """

    mode: str = "none"
    fliplr: float = 0.5
    flipud: float = 0.5
    translate: Tuple[float, float] = (0.5, 0.05)
    scale: Tuple[float, float] = (0.5, 0.05)


def augment_spec(block: Mapping[str, Any], prefix: str = "dataset.augment") -> AugmentSpec:
    """The ``augment:`` block of a dataset config -> ``AugmentSpec``; a bad value names ``prefix.<key>``."""
    block = dict(block or {})
    known = set(AugmentSpec.__dataclass_fields__)
    for key in block:
        if key not in known:
            raise UserError("unknown setting %s.%s (known: %s)" % (prefix, key, ", ".join(sorted(known))))

    def bad(key: str, why: str) -> UserError:
        return UserError("bad setting %s.%s: %s" % (prefix, key, why))

    for key, value in block.items():
        if key == "mode":
            continue
        try:
            block[key] = tuple(float(v) for v in value) if key in ("translate", "scale") else float(value)
        except (TypeError, ValueError):
            raise bad(key, "must be %s, got %r" % ("[probability, fraction]" if key in ("translate", "scale")
                                                  else "a probability", value)) from None
    spec = AugmentSpec(**block)

    if spec.mode not in MODES:
        raise bad("mode", "must be one of %s, got %r" % (MODES, spec.mode))
    for key in ("fliplr", "flipud"):
        if not 0.0 <= getattr(spec, key) <= 1.0:
            raise bad(key, "must be a probability in [0, 1]")
    for key in ("translate", "scale"):
        pair = getattr(spec, key)
        if len(pair) != 2 or not 0.0 <= pair[0] <= 1.0 or not 0.0 <= pair[1] < 1.0:
            raise bad(key, "must be [probability in 0..1, fraction in 0..1), got %r" % (pair,))
    return spec


def random_crop(arrays: Arrays, crop: Tuple[int, int], rng: np.random.RandomState) -> Arrays:
    """Crop all four arrays at one random (y, x) to ``crop`` = (h, w); the image must be at least that big."""
    h, w = arrays[0].shape[:2]
    ch, cw = crop
    y = rng.randint(h - ch + 1)
    x = rng.randint(w - cw + 1)
    return tuple(a[y:y + ch, x:x + cw] for a in arrays)


def augment(arrays: Arrays, spec: AugmentSpec, rng: np.random.RandomState) -> Arrays:
    """Apply ``spec`` to (img1, img2, flow, valid) keeping them consistent; returns contiguous copies."""
    img1, img2, flow, valid = arrays
    if spec.mode != "none":
        if rng.uniform() < spec.fliplr:
            img1, img2, flow, valid = (a[:, ::-1] for a in (img1, img2, flow, valid))
            flow = flow * np.array([-1.0, 1.0], np.float32)
        if rng.uniform() < spec.flipud:
            img1, img2, flow, valid = (a[::-1] for a in (img1, img2, flow, valid))
            flow = flow * np.array([1.0, -1.0], np.float32)
    if spec.mode == "heavy":
        h, w = img1.shape[:2]
        if rng.uniform() < spec.translate[0]:
            tw = int(rng.uniform(-spec.translate[1], spec.translate[1]) * w)
            th = int(rng.uniform(-spec.translate[1], spec.translate[1]) * h)
            img2 = _shift(np.ascontiguousarray(img2), tw, th)
            flow = flow + np.array([tw, th], np.float32)
        if rng.uniform() < spec.scale[0]:
            ratio = rng.uniform(1.0 - spec.scale[1], 1.0 + spec.scale[1])
            img1, img2, flow, valid = zoom((img1, img2, flow, valid), ratio)
    return tuple(np.ascontiguousarray(a) for a in (img1, img2, flow.astype(np.float32), valid.astype(np.float32)))


def _shift(img: np.ndarray, tx: int, ty: int) -> np.ndarray:
    """Move the content of ``img`` by integer (tx, ty) px, filling with black (cv2.warpAffine semantics)."""
    out = np.zeros_like(img)
    h, w = img.shape[:2]
    ys, yd = (slice(0, h - ty), slice(ty, h)) if ty >= 0 else (slice(-ty, h), slice(0, h + ty))
    xs, xd = (slice(0, w - tx), slice(tx, w)) if tx >= 0 else (slice(-tx, w), slice(0, w + tx))
    out[yd, xd] = img[ys, xs]
    return out


def zoom(arrays: Arrays, ratio: float) -> Arrays:
    """Centred zoom by ``ratio`` keeping the size: images and flow resampled, flow x ratio, padding invalid."""
    img1, img2, flow, valid = (np.ascontiguousarray(a) for a in arrays)
    h, w = img1.shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.array([[ratio, 0.0, (1.0 - ratio) * cx], [0.0, ratio, (1.0 - ratio) * cy]])

    def warp(a: np.ndarray, interp: int) -> np.ndarray:
        return cv2.warpAffine(a, m, (w, h), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    flow = warp(flow, cv2.INTER_LINEAR) * np.float32(ratio)
    # A pixel stays valid only if every source pixel it blends was valid and inside the frame.
    valid = (warp(valid.astype(np.float32), cv2.INTER_LINEAR) > 0.999).astype(np.float32)
    return warp(img1, cv2.INTER_LINEAR), warp(img2, cv2.INTER_LINEAR), flow, valid

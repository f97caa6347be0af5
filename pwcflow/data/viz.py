"""Flow pictures: the Middlebury color wheel (Baker et al. 2007), error maps, side-by-side panels."""

from typing import Optional, Sequence

import numpy as np

UNKNOWN_FLOW_THRESH = 1e9


def color_wheel() -> np.ndarray:
    """The 55-hue Middlebury wheel (RY 15, YG 6, GC 4, CB 11, BM 13, MR 6) as float (55, 3) in 0..255."""
    wheel = []
    segments = ((15, 0, 1, 1), (6, 1, 0, -1), (4, 1, 2, 1), (11, 2, 1, -1), (13, 2, 0, 1), (6, 0, 2, -1))
    for n, fixed, ramp, sign in segments:
        seg = np.zeros((n, 3))
        seg[:, fixed] = 255
        step = np.floor(255 * np.arange(n) / n)
        seg[:, ramp] = step if sign > 0 else 255 - step
        wheel.append(seg)
    return np.concatenate(wheel)


def flow_to_color(flow: np.ndarray, max_flow: Optional[float] = None) -> np.ndarray:
    """RGB uint8 (H, W, 3) picture of a flow (H, W, 2); radius normalised by ``max_flow`` or the max.

    Unknown flow (|u| or |v| > 1e9, or NaN) is drawn black.
    """
    u = flow[:, :, 0].astype(np.float64)
    v = flow[:, :, 1].astype(np.float64)
    unknown = ~np.isfinite(u) | ~np.isfinite(v) | (np.abs(u) > UNKNOWN_FLOW_THRESH) | (np.abs(v) > UNKNOWN_FLOW_THRESH)
    u = np.where(unknown, 0.0, u)
    v = np.where(unknown, 0.0, v)
    rad = np.sqrt(u ** 2 + v ** 2)
    norm = max_flow if max_flow else max(float(rad.max()), 1e-5)
    u, v, rad = u / norm, v / norm, rad / norm
    wheel = color_wheel()
    ncols = wheel.shape[0]
    angle = np.arctan2(-v, -u) / np.pi
    fk = (angle + 1) / 2 * (ncols - 1)
    k0 = np.floor(fk).astype(int)
    k1 = (k0 + 1) % ncols
    f = (fk - k0)[..., None]
    col = ((1 - f) * wheel[k0] + f * wheel[k1]) / 255.0
    inside = (rad <= 1)[..., None]
    col = np.where(inside, 1 - rad[..., None] * (1 - col), col * 0.75)
    img = np.floor(255 * col).astype(np.uint8)
    img[unknown] = 0
    return img


def error_map(flow: np.ndarray, gt: np.ndarray, valid: Optional[np.ndarray] = None,
              max_err: float = 10.0) -> np.ndarray:
    """RGB uint8 heat map of the end-point error (black 0 px -> yellow/white >= ``max_err`` px)."""
    err = np.sqrt(((flow - gt) ** 2).sum(axis=2))
    if valid is not None:
        err = err * (valid > 0)
    t = np.clip(err / max_err, 0, 1)
    rgb = np.stack([np.clip(3 * t, 0, 1), np.clip(3 * t - 1, 0, 1), np.clip(3 * t - 2, 0, 1)], axis=2)
    return (255 * rgb).astype(np.uint8)


def side_by_side(images: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    """Concatenate RGB images of equal height horizontally with a white gap."""
    h = images[0].shape[0]
    spacer = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for i, img in enumerate(images):
        parts += ([spacer] if i else []) + [img]
    return np.concatenate(parts, axis=1)

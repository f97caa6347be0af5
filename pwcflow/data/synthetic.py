"""A built-in optical-flow data set, generated on the fly (no download, no disk).

Each pair is a stack of textured layers: a full-frame background and a few textured shapes on top.
Every layer moves by its own random affine map ``A`` (frame 1 -> frame 2 pixel coordinates), so
the ground truth is exact: at pixel ``p`` of frame 1 the flow is ``A_l p - p`` for the topmost layer
``l`` covering ``p`` (channel 0 = u horizontal, 1 = v vertical, as in ``.flo``). Motions are scaled so
that no pixel of a layer moves more than ``max_motion`` px. Pairs are a pure function of
``(seed, split, index)``. ``make_pair_occlusion`` also returns the exact backward flow and the pixels of
frame 1 that are occluded in frame 2 (covered by another layer there, or moved out of the frame).
"""

from dataclasses import dataclass
from typing import List, Tuple

import cv2
import numpy as np

SPLITS = ("train", "val")


@dataclass(frozen=True)
class SyntheticSpec:
    """Image ``size`` (H, W), the largest per-pixel motion in px, and the generator seed."""

    size: Tuple[int, int] = (192, 256)
    max_motion: float = 8.0
    seed: int = 0


def texture(shape: Tuple[int, int], rng: np.random.RandomState) -> np.ndarray:
    """Rich, saturated RGB float32 texture in [0, 1]: noise octaves (3 to 32 px) under a random colour mix."""
    h, w = shape
    acc = np.zeros((h, w, 3), np.float32)
    for cell, weight in ((3, 0.7), (6, 1.0), (12, 1.0), (32, 1.0)):
        small = rng.standard_normal((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        acc += weight * cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)[
            cell:cell + h, cell:cell + w]
    acc /= max(float(acc.std()), 1e-6)
    mix = rng.uniform(-1.0, 1.0, (3, 3)).astype(np.float32) + np.eye(3, dtype=np.float32)
    base = rng.uniform(0.2, 0.8, 3).astype(np.float32)
    return np.clip(base + 0.18 * acc @ mix, 0.0, 1.0)


def _affine(rng: np.random.RandomState, center: np.ndarray, rot_deg: float, zoom: float, shift: float) -> np.ndarray:
    """Random 2x3 similarity about ``center`` plus a translation of up to ``shift`` px."""
    m = cv2.getRotationMatrix2D((float(center[0]), float(center[1])), rng.uniform(-rot_deg, rot_deg),
                                1.0 + rng.uniform(-zoom, zoom))
    m[:, 2] += rng.uniform(-shift, shift, 2)
    return m


def _limit(m: np.ndarray, corners: np.ndarray, max_motion: float) -> np.ndarray:
    """Shrink ``m - I`` so the displacement of ``corners`` (N, 2) stays within ``max_motion``.

    The displacement of an affine map is affine in p, so its largest norm over a box is at a corner.
    """
    ident = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    pts = np.concatenate([corners, np.ones((len(corners), 1))], axis=1)
    biggest = float(np.linalg.norm(pts @ (m - ident).T, axis=1).max())
    if biggest <= max_motion:
        return m
    return ident + (m - ident) * (max_motion / biggest)


def _shape_mask(rng: np.random.RandomState, h: int, w: int) -> np.ndarray:
    """Anti-aliased float32 mask of a random ellipse or polygon covering a modest part of the frame."""
    mask = np.zeros((h, w), np.uint8)
    cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
    r = rng.uniform(0.1, 0.3) * min(h, w)
    if rng.uniform() < 0.5:
        axes = (int(r), int(r * rng.uniform(0.5, 1.0)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
    else:
        n = rng.randint(3, 7)
        ang = np.sort(rng.uniform(0, 2 * np.pi, n))
        rad = r * rng.uniform(0.6, 1.2, n)
        pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).round().astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


def make_pair(spec: SyntheticSpec, split: str, index: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair ``index`` of ``split`` -> (img1 uint8 RGB, img2 uint8 RGB, flow float32 (H, W, 2))."""
    return _compose(spec, split, index)[:3]


def make_pair_occlusion(spec: SyntheticSpec, split: str, index: int) -> Tuple[np.ndarray, ...]:
    """(img1, img2, forward flow, backward flow (frame 2 -> 1, float32 (H, W, 2)), occluded bool (H, W))."""
    img1, img2, flow, mats, label1, label2 = _compose(spec, split, index, track=True)
    h, w = spec.size
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    back = np.zeros_like(flow)
    for k, m in enumerate(mats):
        inv = cv2.invertAffineTransform(m)
        back = np.where((label2 == k)[..., None], _displacement(inv, xs, ys), back)
    tx, ty = np.rint(xs + flow[..., 0]).astype(int), np.rint(ys + flow[..., 1]).astype(int)
    inside = (tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)
    occluded = ~inside | (label2[np.clip(ty, 0, h - 1), np.clip(tx, 0, w - 1)] != label1)
    return img1, img2, flow, back.astype(np.float32), occluded


def _compose(spec: SyntheticSpec, split: str, index: int, track: bool = False) -> Tuple:
    """The pair; with ``track`` also each layer's affine map and the topmost layer per pixel in both frames."""
    h, w = spec.size
    rng = np.random.RandomState([spec.seed, SPLITS.index(split), index])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    frame_corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    mm = float(spec.max_motion)

    # Background: a gentle similarity (rotation, zoom) plus a translation, never beyond max_motion.
    m = _limit(_affine(rng, np.array([w / 2.0, h / 2.0]), 3.0, 0.04, mm), frame_corners, mm)
    tex = texture((h, w), rng)
    img1 = tex.copy()
    img2 = cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    flow = _displacement(m, xs, ys)
    mats: List[np.ndarray] = [m]
    label1, label2 = np.zeros((h, w), np.int32), np.zeros((h, w), np.int32)

    for _ in range(rng.randint(2, 6)):
        mask = _shape_mask(rng, h, w)
        yy, xx = np.nonzero(mask > 0)
        if yy.size == 0:
            continue
        box = np.array([[xx.min(), yy.min()], [xx.max(), yy.min()], [xx.min(), yy.max()], [xx.max(), yy.max()]],
                       np.float64)
        m = _limit(_affine(rng, box.mean(axis=0), 15.0, 0.1, mm), box, mm)
        tex = texture((h, w), rng)
        alpha = mask[..., None]
        img1 = img1 * (1.0 - alpha) + tex * alpha
        alpha2 = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        img2 = img2 * (1.0 - alpha2) + cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR) * alpha2
        flow = np.where(mask[..., None] > 0.5, _displacement(m, xs, ys), flow)
        if track:
            mats.append(m)
            label1[mask > 0.5] = len(mats) - 1
            label2[alpha2[..., 0] > 0.5] = len(mats) - 1

    to_u8 = lambda im: np.clip(im * 255.0 + 0.5, 0, 255).astype(np.uint8)  # noqa: E731
    return (to_u8(img1), to_u8(img2), flow.astype(np.float32)) + ((mats, label1, label2) if track else ())


def _displacement(m: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Per-pixel displacement (u, v) of the affine map ``m`` at pixel grid (xs, ys)."""
    u = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
    v = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
    return np.stack([u, v], axis=2).astype(np.float32)

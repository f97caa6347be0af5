"""Readers and writers for images and flow files, validated: a bad file raises ``UserError`` naming it.

Formats: Middlebury ``.flo``, ``.pfm`` (FlyingThings3D), KITTI 16-bit PNG flow with validity,
and 8-bit ``.png``/``.ppm`` images (returned as RGB uint8).
"""

import functools
import os
import re
from typing import Tuple

import cv2
import numpy as np

from pwcflow.errors import UserError
from pwcflow.files.atomic import atomic_file

FLO_TAG = 202021.25
UNKNOWN_FLOW_THRESH = 1e9
IMAGE_READ_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".pgm", ".bmp", ".tif", ".tiff", ".webp")  # frames we read
IMAGE_WRITE_EXTS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")  # pictures we write
FLOW_FORMATS = {"flo": ".flo", "png16": ".png", "npy": ".npy"}  # flow formats we write -> file suffix


def _need(path: str) -> None:
    if not os.path.isfile(path):
        raise UserError("file not found: %s" % path)


def read_image(path: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) from a PNG/PPM/JPEG file."""
    _need(path)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise UserError("cannot read image (corrupt or not an image): %s" % path)
    return np.ascontiguousarray(img[:, :, ::-1])


def write_image(path: str, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image (format from the extension), atomically."""
    _atomic_write(path, lambda tmp: cv2.imwrite(tmp, np.ascontiguousarray(rgb[:, :, ::-1])), ext=_ext(path))


def read_flo(path: str) -> np.ndarray:
    """Middlebury ``.flo`` -> float32 (H, W, 2); validates tag and size."""
    _need(path)
    with open(path, "rb") as fh:
        header = fh.read(12)
        if len(header) < 12 or np.frombuffer(header[:4], "<f4")[0] != FLO_TAG:
            raise UserError("not a .flo file (bad magic number): %s" % path)
        w, h = (int(v) for v in np.frombuffer(header[4:], "<i4"))
        if not (0 < w < 100000 and 0 < h < 100000):
            raise UserError("corrupt .flo header (size %dx%d): %s" % (w, h, path))
        body = fh.read()
    if len(body) != w * h * 8:
        raise UserError("truncated or oversized .flo (expected %d bytes after the header, found %d): %s"
                        % (w * h * 8, len(body), path))
    return np.frombuffer(body, "<f4").reshape(h, w, 2).astype(np.float32)


def write_flo(path: str, flow: np.ndarray) -> None:
    """Write float32 (H, W, 2) as Middlebury ``.flo``, atomically."""
    flow = np.asarray(flow, np.float32)
    if flow.ndim != 3 or flow.shape[2] != 2:
        raise ValueError("flow must be (H, W, 2), got %s" % (flow.shape,))
    h, w = flow.shape[:2]
    payload = np.array([FLO_TAG], "<f4").tobytes() + np.array([w, h], "<i4").tobytes() + flow.astype("<f4").tobytes()
    _atomic_write(path, functools.partial(_write_bytes, payload=payload))


def read_pfm(path: str) -> np.ndarray:
    """PFM -> float32 (H, W, C) top-to-bottom (C = 3 for ``PF``, 1 for ``Pf``)."""
    _need(path)
    with open(path, "rb") as fh:
        raw = fh.read()
    m = re.match(rb"(PF|Pf)\s+(\d+)\s+(\d+)\s+([-+0-9.eE]+)\s", raw)
    if not m:
        raise UserError("not a PFM file (bad header): %s" % path)
    channels = 3 if m.group(1) == b"PF" else 1
    w, h, scale = int(m.group(2)), int(m.group(3)), float(m.group(4))
    dtype = "<f4" if scale < 0 else ">f4"
    body = raw[m.end():]
    if len(body) != w * h * channels * 4:
        raise UserError("truncated or oversized PFM (expected %d bytes, found %d): %s"
                        % (w * h * channels * 4, len(body), path))
    data = np.frombuffer(body, dtype).reshape(h, w, channels)
    return np.flipud(data).astype(np.float32)


def write_pfm(path: str, data: np.ndarray) -> None:
    """Write float32 (H, W, 3) or (H, W) / (H, W, 1) as little-endian PFM."""
    data = np.asarray(data, np.float32)
    if data.ndim == 2:
        data = data[:, :, None]
    tag = b"PF" if data.shape[2] == 3 else b"Pf"
    header = b"%s\n%d %d\n-1.0\n" % (tag, data.shape[1], data.shape[0])
    payload = header + np.flipud(data).astype("<f4").tobytes()
    _atomic_write(path, functools.partial(_write_bytes, payload=payload))


def read_flow(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Any supported flow file -> (flow float32 (H, W, 2), valid float32 (H, W))."""
    ext = _ext(path)
    if ext == ".flo":
        flow = read_flo(path)
        if flow.max() < UNKNOWN_FLOW_THRESH and flow.min() > -UNKNOWN_FLOW_THRESH:  # the common case, cheaply
            return flow, np.ones(flow.shape[:2], np.float32)
        valid = (np.abs(flow) < UNKNOWN_FLOW_THRESH).all(axis=2)  # NaN counts as unknown too
        flow[~valid] = 0.0
        return flow, valid.astype(np.float32)
    if ext == ".pfm":
        data = read_pfm(path)
        if data.shape[2] < 2:
            raise UserError("PFM has %d channel(s), a flow needs 2: %s" % (data.shape[2], path))
        flow = np.ascontiguousarray(data[:, :, :2])
        return flow, np.ones(flow.shape[:2], np.float32)
    if ext == ".png":
        return read_kitti_flow(path)
    if ext == ".npy":
        _need(path)
        flow = np.load(path).astype(np.float32)
        return flow, np.ones(flow.shape[:2], np.float32)
    raise UserError("unsupported flow file type %r: %s" % (ext, path))


def write_flow(path: str, flow: np.ndarray, fmt: str) -> None:
    """One flow in ``fmt`` (a key of ``FLOW_FORMATS``: flo | png16, KITTI's 16-bit PNG | npy), atomically."""
    if fmt == "png16":
        write_kitti_flow(path, flow)
    elif fmt == "npy":
        write_npy(path, flow.astype(np.float32))
    elif fmt == "flo":
        write_flo(path, flow)
    else:
        raise UserError("unknown flow format %r: must be one of %s" % (fmt, ", ".join(FLOW_FORMATS)))


def read_kitti_flow(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """KITTI 16-bit PNG flow: R=u, G=v as (x - 2^15) / 64, B = valid."""
    _need(path)
    raw = cv2.imread(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 3:
        raise UserError("not a KITTI 16-bit flow PNG: %s" % path)
    raw = raw[:, :, ::-1].astype(np.float32)
    flow = (raw[:, :, :2] - 2 ** 15) / 64.0
    valid = (raw[:, :, 2] > 0).astype(np.float32)
    return (flow * valid[..., None]).astype(np.float32), valid


def write_kitti_flow(path: str, flow: np.ndarray, valid: np.ndarray = None) -> None:
    """Write a KITTI 16-bit PNG flow (valid defaults to all ones): R = u*64 + 2^15, G = v*64 + 2^15, B = valid,
    rounded to the nearest 1/64 px (in float64, so the error stays within 1/128 px)."""
    flow = np.asarray(flow, np.float64)
    valid = np.ones(flow.shape[:2], np.float64) if valid is None else np.asarray(valid, np.float64)
    uv = np.clip(flow * 64.0 + 2 ** 15, 0, 2 ** 16 - 1)
    rgb = np.concatenate([uv, valid[..., None]], axis=2).round().astype(np.uint16)
    _atomic_write(path, lambda tmp: cv2.imwrite(tmp, rgb[:, :, ::-1]), ext=".png")


def write_npy(path: str, array: np.ndarray) -> None:
    """Write an array as ``.npy``, atomically."""
    _atomic_write(path, lambda tmp: np.save(tmp, np.asarray(array)), ext=".npy")


def write_gray(path: str, img: np.ndarray) -> None:
    """Write a single-channel uint8 image (a mask, a confidence map), atomically."""
    _atomic_write(path, lambda tmp: cv2.imwrite(tmp, np.ascontiguousarray(img, np.uint8)), ext=_ext(path))


def _write_bytes(tmp: str, payload: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(payload)


def _ext(path: str) -> str:
    return os.path.splitext(path)[1].lower()


def _atomic_write(path: str, writer, ext: str = "") -> None:
    """Run ``writer(tmp_path)`` then rename onto ``path``: no partial output on failure."""
    with atomic_file(path, suffix=ext) as tmp:
        if writer(tmp) is False:
            raise UserError("cannot write %s" % path)

"""Tiny data sets written on the fly in each official on-disk layout (for tests of readers and tools).

Every builder writes *into* ``root`` exactly what ``dataset.root`` must point at, and returns
``root`` as a string. Frames are windows sliding over one random texture, so each pair's ground
truth is an exact integer translation: ``frame2(p + flow(p)) == frame1(p)`` inside the image.
"""

import os
from typing import Dict, Iterable, Optional, Sequence, Tuple

import cv2
import numpy as np

from pwcflow.data import flowio, synthetic

Size = Tuple[int, int]


def texture(shape: Size, seed: int) -> np.ndarray:
    """A rich RGB uint8 texture (the synthetic set's), deterministic by ``seed``."""
    return (synthetic.texture(shape, np.random.RandomState(seed)) * 255.0 + 0.5).astype(np.uint8)


def sequence(size: Size, frames: int, step: Tuple[int, int], seed: int) -> Tuple[list, np.ndarray]:
    """``frames`` RGB frames whose content moves by ``step`` = (u, v) px per frame, and that flow."""
    h, w = size
    u, v = step
    pad = (frames + 1) * max(abs(u), abs(v)) + 1
    big = texture((h + 2 * pad, w + 2 * pad), seed)
    out = [big[pad - k * v: pad - k * v + h, pad - k * u: pad - k * u + w].copy() for k in range(frames)]
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = u, v
    return out, flow


def _final(img: np.ndarray) -> np.ndarray:
    """Sintel/Things 'final' pass stand-in: the clean frame slightly blurred."""
    return cv2.GaussianBlur(img, (3, 3), 0.8)


def make_sintel(root, scenes: Sequence[str] = ("alley_1", "bamboo_2"), frames: int = 3, size: Size = (64, 128),
                passes: Sequence[str] = ("clean", "final"), with_test: bool = True,
                test_scenes: Sequence[str] = ("ambush_1",)) -> str:
    """MPI-Sintel-complete: ``training/{clean,final,flow}/<scene>/frame_%04d.{png,flo}`` and ``test/<pass>/``."""
    root = str(root)
    for i, scene in enumerate(scenes):
        imgs, flow = sequence(size, frames, (1 + i, -1), seed=100 + i)
        for k, img in enumerate(imgs, start=1):
            for p in passes:
                frame = img if p == "clean" else _final(img)
                flowio.write_image(os.path.join(root, "training", p, scene, "frame_%04d.png" % k), frame)
            if k < frames:
                flowio.write_flo(os.path.join(root, "training", "flow", scene, "frame_%04d.flo" % k), flow)
    if with_test:
        for i, scene in enumerate(test_scenes):
            imgs, _ = sequence(size, frames, (2, 1), seed=200 + i)
            for k, img in enumerate(imgs, start=1):
                for p in passes:
                    frame = img if p == "clean" else _final(img)
                    flowio.write_image(os.path.join(root, "test", p, scene, "frame_%04d.png" % k), frame)
    return root


def make_chairs(root, n: int = 5, size: Size = (48, 64), split: Optional[Sequence[int]] = None,
                with_split_file: bool = True) -> str:
    """FlyingChairs_release: ``data/%05d_img{1,2}.ppm, %05d_flow.flo`` + ``FlyingChairs_train_val.txt``."""
    root = str(root)
    split = list(split) if split is not None else [2 if i % 4 == 3 else 1 for i in range(n)]
    for i in range(1, n + 1):
        (img1, img2), flow = sequence(size, 2, (1 + i % 3, 1 - i % 2), seed=300 + i)
        flowio.write_image(os.path.join(root, "data", "%05d_img1.ppm" % i), img1)
        flowio.write_image(os.path.join(root, "data", "%05d_img2.ppm" % i), img2)
        flowio.write_flo(os.path.join(root, "data", "%05d_flow.flo" % i), flow)
    if with_split_file:
        with open(os.path.join(root, "FlyingChairs_train_val.txt"), "w") as fh:
            fh.write("".join("%d\n" % s for s in split))
    return root


def make_things(root, scenes: Dict[str, Iterable[str]] = None, frames: int = 3, size: Size = (64, 96),
                passes: Sequence[str] = ("clean", "final"), unused: Sequence[str] = ()) -> str:
    """FlyingThings3D: ``frames_{clean,final}pass/{TRAIN,TEST}/<A|B|C>/<NNNN>/{left,right}/%04d.png`` and
    ``optical_flow/<TRAIN|TEST>/<set>/<NNNN>/into_future/{left,right}/OpticalFlowIntoFuture_%04d_{L,R}.pfm``
    (frames numbered from 6, as in the release); ``unused`` lines go to ``all_unused_files.txt``."""
    root = str(root)
    scenes = scenes or {"TRAIN": {"A": ("0000", "0001")}, "TEST": {"A": ("0000",)}}
    seed = 400
    for part, subsets in scenes.items():
        for subset, names in subsets.items():
            for scene in names:
                seed += 1
                imgs, flow = sequence(size, frames, (2, 1), seed=seed)
                for k, img in enumerate(imgs):
                    num = 6 + k
                    for cam in ("left", "right"):
                        for p in passes:
                            frame = img if p == "clean" else _final(img)
                            flowio.write_image(os.path.join(root, "frames_%spass" % p, part, subset, scene, cam,
                                                            "%04d.png" % num), frame)
                        side = cam[0].upper()
                        pfm = np.concatenate([flow, np.zeros_like(flow[..., :1])], axis=2)
                        if k < frames - 1:
                            flowio.write_pfm(os.path.join(root, "optical_flow", part, subset, scene, "into_future",
                                                          cam, "OpticalFlowIntoFuture_%04d_%s.pfm" % (num, side)), pfm)
    if unused:
        os.makedirs(os.path.join(root, "frames_cleanpass"), exist_ok=True)
        with open(os.path.join(root, "frames_cleanpass", "all_unused_files.txt"), "w") as fh:
            fh.write("".join(line + "\n" for line in unused))
    return root


def make_kitti(root, n: int = 3, size: Size = (40, 120), with_test: bool = True) -> str:
    """KITTI 2015: ``training/image_2/%06d_1{0,1}.png``, ``training/flow_{occ,noc}/%06d_10.png``, ``testing/``."""
    root = str(root)
    for i in range(n):
        (img1, img2), flow = sequence(size, 2, (3, 0), seed=500 + i)
        valid = np.ones(size, np.float32)
        valid[: size[0] // 4] = 0  # KITTI's sky has no ground truth
        flowio.write_image(os.path.join(root, "training", "image_2", "%06d_10.png" % i), img1)
        flowio.write_image(os.path.join(root, "training", "image_2", "%06d_11.png" % i), img2)
        flowio.write_kitti_flow(os.path.join(root, "training", "flow_occ", "%06d_10.png" % i), flow, valid)
        flowio.write_kitti_flow(os.path.join(root, "training", "flow_noc", "%06d_10.png" % i), flow, valid)
        if with_test:
            flowio.write_image(os.path.join(root, "testing", "image_2", "%06d_10.png" % i), img1)
            flowio.write_image(os.path.join(root, "testing", "image_2", "%06d_11.png" % i), img2)
    return root

"""Helpers the data set tests share: a ``dataset`` config composed as a command line would, and a check that a
flow explains a frame pair."""

from pathlib import Path

import cv2
import numpy as np
from hydra import compose, initialize_config_dir

from pwcflow.data.datasets import spec_from_config

ROOT = Path(__file__).resolve().parents[2]


def spec_for(name, root=None, *overrides):
    """Compose ``+dataset=<name>`` as a command line would, and validate it."""
    over = ["+dataset=" + name] + ([] if root is None else ["dataset.root=" + str(root)]) + list(overrides)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("predict", overrides=over)
    return spec_from_config(cfg.dataset)


def warp_error(img1, img2, flow):
    """Mean |img1 - img2(p + flow)| over pixels that land inside frame 2 (uint8 units)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(img2.astype(np.float32), mx, my, cv2.INTER_LINEAR)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return float(np.abs(warped - img1.astype(np.float32))[inside].mean())

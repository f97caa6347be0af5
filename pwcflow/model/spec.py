"""What a PWC-Net variant and its loss are, and its input convention, without TensorFlow: the typed config, the
TensorFlow predictor and the exported-model runtimes import this."""

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

LOSS_KINDS = {"multiscale": (2, 0.0, 1.0), "robust": (1, 0.01, 0.4)}  # norm order, epsilon, q


@dataclass(frozen=True)
class ModelSpec:
    """What defines a PWC-Net variant (the ``model`` config group maps onto this)."""

    name: str = "lg-6-2"
    dense: bool = True  # tfoptflow use_dense_cx
    context_all_levels: bool = True  # tfoptflow use_res_cx
    pyr_lvls: int = 6
    flow_pred_lvl: int = 2
    search_range: int = 4
    costvol_impl: str = "auto"  # auto | fused | reference | patches (tuning.resolve: auto picks per backend)
    warp_impl: str = "auto"  # auto | fused | reference

    @property
    def multiple(self) -> int:
        """Input height/width must be a multiple of this (64 for 6 levels)."""
        return 2 ** self.pyr_lvls


def to_input(img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """Two RGB uint8 frames (H, W, 3) -> float32 [2, H, W, 3] in [0, 1] (no mean subtraction)."""
    return np.stack([img1, img2]).astype(np.float32) / 255.0


def pad_to(x: np.ndarray, sizes: Dict[int, int]) -> np.ndarray:
    """Zero-pad axis ``ax`` of ``x`` at its end (bottom, right, last of a batch) up to ``sizes[ax]``."""
    pad = [(0, 0)] * x.ndim
    for ax, size in sizes.items():
        pad[ax] = (0, size - x.shape[ax])
    return np.pad(x, pad, mode="constant") if any(p[1] for p in pad) else x


def pad_to_multiple(x: np.ndarray, multiple: int, axes: Tuple[int, int]) -> np.ndarray:
    """Zero-pad at the bottom and right only, up to the next multiple (tfoptflow's adapt_x)."""
    return pad_to(x, {ax: -(-x.shape[ax] // multiple) * multiple for ax in axes})

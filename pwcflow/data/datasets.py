"""Data sets in their official on-disk layouts -> lists of ``Sample``.

INTERFACE (owned by the data layer; train/eval rely on it):
- ``Sample``: one frame pair; ``load()`` returns (img1 RGB uint8 (H,W,3), img2, flow float32
  (H,W,2) or None, valid float32 (H,W) or None).
- ``build(ds: DatasetSpec, split: str) -> List[Sample]`` with split in {"train", "val", "all", "test"}.
"""

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

Loaded = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


@dataclass(frozen=True)
class Sample:
    """One frame pair: ``name`` is unique and path-like (e.g. ``clean/alley_1/frame_0001``)."""

    name: str
    scene: str
    loader: Callable[[], Loaded]

    def load(self) -> Loaded:
        """Read (img1, img2, flow or None, valid or None)."""
        return self.loader()

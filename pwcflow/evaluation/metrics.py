"""Flow accuracy over a data set, accumulated batch by batch the way the Sintel benchmark does.

Every number is a ratio of *pixel* sums over the whole data set (or scene, or speed band):
``EPE = sum of per-pixel end-point errors / number of pixels``. Large images therefore weigh
more than small ones; this is *not* the mean of per-image means (the two agree only when all
images have the same number of valid pixels, as on Sintel). Only pixels with ``valid > 0``
count when a validity mask is given (KITTI); otherwise every pixel counts.

- ``epe``: all-pixel average end-point error ``|flow - gt|`` in pixels.
- ``bands``: EPE over pixels whose ground-truth speed ``|gt|`` lies in [0, 10), [10, 40) or
  [40, inf) px (Sintel's s0-10 / s10-40 / s40+).
- ``outliers``: fraction of pixels with EPE > 1, 3 and 5 px.
- ``per_scene``: all-pixel EPE within each scene; ``per_pair``: each pair's own EPE.
- ``fl_all``: KITTI's Fl, the fraction of (valid) pixels whose EPE exceeds both 3 px and 5 % of ``|gt|``
  (over ``flow_noc``'s pixels when the data set reads ``gt=noc``: KITTI's Fl-noc).
- ``epe_matched`` / ``epe_unmatched``: Sintel's EPE over pixels visible / occluded in frame 2, when pairs
  come with an occlusion mask (``training/occlusions/``); ``None`` otherwise.
"""

from collections import OrderedDict
from typing import Dict, Optional, Sequence

import numpy as np

BANDS = (("s0-10", 0.0, 10.0), ("s10-40", 10.0, 40.0), ("s40+", 40.0, float("inf")))
OUTLIER_PX = (1, 3, 5)
FL_PX, FL_REL = 3.0, 0.05  # KITTI Fl: EPE > 3 px and > 5 % of |gt|


def fl_outliers(err: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """KITTI's bad-pixel mask: EPE > 3 px and EPE > 5 % of the ground-truth magnitude."""
    return (err > FL_PX) & (err > FL_REL * speed)


def end_point_error(flow: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel EPE ``sqrt(du^2 + dv^2)`` for flows (..., 2), in float64."""
    diff = np.asarray(flow, np.float64) - np.asarray(gt, np.float64)
    return np.sqrt((diff ** 2).sum(axis=-1))


class _Sum:
    """A running (error sum, pixel count) pair."""

    __slots__ = ("err", "n")

    def __init__(self) -> None:
        self.err, self.n = 0.0, 0

    def add(self, err: np.ndarray) -> None:
        self.err += float(err.sum())
        self.n += int(err.size)

    def mean(self) -> Optional[float]:
        return self.err / self.n if self.n else None


class FlowMetrics:
    """Accumulates EPE, per-scene EPE, speed-band EPE and outlier rates; feed it with ``update``."""

    def __init__(self) -> None:
        self.total = _Sum()
        self.scenes = OrderedDict()  # type: Dict[str, _Sum]
        self.bands = OrderedDict((name, _Sum()) for name, _, _ in BANDS)
        self.outliers = OrderedDict((px, 0) for px in OUTLIER_PX)
        self.per_pair = OrderedDict()  # type: Dict[str, Optional[float]]
        self.fl = 0
        self.matched, self.unmatched = _Sum(), _Sum()

    def update_pair(self, name: str, scene: str, flow: np.ndarray, gt: np.ndarray,
                    valid: Optional[np.ndarray] = None, occluded: Optional[np.ndarray] = None) -> Optional[float]:
        """Add one pair (flow and gt (H, W, 2), valid and occluded (H, W) or None); returns its own EPE."""
        if flow.shape != gt.shape:
            raise ValueError("flow %s and ground truth %s differ in shape (%s)" % (flow.shape, gt.shape, name))
        err = end_point_error(flow, gt)
        speed = np.sqrt((np.asarray(gt, np.float64) ** 2).sum(axis=-1))
        mask = np.ones(err.shape, bool) if valid is None else np.asarray(valid) > 0
        if occluded is not None:
            occ = np.asarray(occluded) > 0
            self.matched.add(err[mask & ~occ])
            self.unmatched.add(err[mask & occ])
        err, speed = err[mask], speed[mask]
        self.total.add(err)
        self.scenes.setdefault(scene, _Sum()).add(err)
        for band, lo, hi in BANDS:
            self.bands[band].add(err[(speed >= lo) & (speed < hi)])
        for px in OUTLIER_PX:
            self.outliers[px] += int((err > px).sum())
        self.fl += int(fl_outliers(err, speed).sum())
        pair_epe = float(err.mean()) if err.size else None
        self.per_pair[name] = pair_epe
        return pair_epe

    def update(self, names: Sequence[str], scenes: Sequence[str], flows: np.ndarray, gts: np.ndarray,
               valids: Optional[np.ndarray] = None) -> None:
        """Add a batch: flows and gts [B, H, W, 2], valids [B, H, W] or None."""
        for i, name in enumerate(names):
            self.update_pair(name, scenes[i], flows[i], gts[i], None if valids is None else valids[i])

    @property
    def pairs(self) -> int:
        """Number of pairs seen."""
        return len(self.per_pair)

    def result(self) -> Dict[str, object]:
        """Plain dict: ``epe``, ``pixels``, ``pairs``, ``per_scene``, ``bands``, ``outliers``, ``per_pair``,
        ``fl_all``, ``epe_matched``, ``epe_unmatched``.

        Averages over no pixels (e.g. an empty speed band) are ``None``.
        """
        n = self.total.n
        return {
            "epe": self.total.mean(),
            "pixels": n,
            "pairs": self.pairs,
            "per_scene": OrderedDict((s, v.mean()) for s, v in self.scenes.items()),
            "bands": OrderedDict((b, v.mean()) for b, v in self.bands.items()),
            "band_pixels": OrderedDict((b, v.n) for b, v in self.bands.items()),
            "outliers": OrderedDict(("%dpx" % px, (c / n if n else None)) for px, c in self.outliers.items()),
            "per_pair": OrderedDict(self.per_pair),
            "fl_all": self.fl / n if n else None,
            "epe_matched": self.matched.mean(),
            "epe_unmatched": self.unmatched.mean(),
        }

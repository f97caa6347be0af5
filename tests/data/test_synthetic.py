"""The synthetic data set (``data/synthetic.py``)."""

import numpy as np
from support.dataset_checks import spec_for, warp_error

from pwcflow.data.datasets import build


def test_synthetic_is_deterministic_and_consistent():
    spec = spec_for("synthetic", None, "dataset.train_size=3", "dataset.val_size=2", "dataset.size=[64,96]")
    train, val = build(spec, "train"), build(spec, "val")
    assert [s.name for s in val] == ["synthetic/val/000000", "synthetic/val/000001"] and len(build(spec, "all")) == 5
    a, b = train[1].load(), build(spec, "train")[1].load()
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(train[0].load()[0], train[1].load()[0])
    assert not np.array_equal(val[0].load()[0], train[0].load()[0])
    other = build(spec_for("synthetic", None, "dataset.train_size=3", "dataset.size=[64,96]", "dataset.seed=5"),
                  "train")
    assert not np.array_equal(other[1].load()[0], a[0])
    for s in train + val:
        img1, img2, flow, valid = s.load()
        assert img1.shape == (64, 96, 3) and valid.min() == 1
        mag = np.linalg.norm(flow, axis=2)
        assert 0.5 < mag.mean() and mag.max() <= 8.0 + 1e-3
        # Exact ground truth: warping frame 2 by the flow beats not warping by far (occlusions aside).
        assert warp_error(img1, img2, flow) < 0.5 * warp_error(img1, img2, np.zeros_like(flow))

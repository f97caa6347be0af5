"""Metrics against values computed by hand on tiny arrays."""

import numpy as np
import pytest

from pwcflow.evaluation.metrics import FlowMetrics, end_point_error


def _flow(values):
    """(H, W, 2) float32 from nested [[(u, v), ...], ...]."""
    return np.array(values, np.float32)


def test_end_point_error_by_hand():
    flow = _flow([[(3, 4), (0, 0)]])
    gt = _flow([[(0, 0), (1, 0)]])
    np.testing.assert_allclose(end_point_error(flow, gt), [[5.0, 1.0]])


def test_all_pixel_average_not_mean_of_means():
    """Pair A: 1 pixel, EPE 5. Pair B: 3 pixels, EPE 1, 1, 1 -> all-pixel 8/4 = 2 (mean of means would be 3)."""
    m = FlowMetrics()
    m.update_pair("a", "s1", _flow([[(3, 4)]]), _flow([[(0, 0)]]))
    m.update_pair("b", "s2", _flow([[(1, 0), (0, 1), (0, 0)]]), _flow([[(0, 0), (0, 0), (1, 0)]]))
    r = m.result()
    assert r["epe"] == pytest.approx(2.0)
    assert r["pairs"] == 2 and r["pixels"] == 4
    assert r["per_scene"] == {"s1": pytest.approx(5.0), "s2": pytest.approx(1.0)}
    assert r["per_pair"] == {"a": pytest.approx(5.0), "b": pytest.approx(1.0)}


def test_per_scene_accumulates_over_pairs():
    m = FlowMetrics()
    zero = _flow([[(0, 0), (0, 0)]])
    m.update_pair("x/1", "x", _flow([[(2, 0), (0, 0)]]), zero)  # errors 2, 0
    m.update_pair("x/2", "x", _flow([[(0, 6), (0, 0)]]), zero)  # errors 6, 0
    m.update_pair("y/1", "y", zero, zero)
    r = m.result()
    assert r["per_scene"]["x"] == pytest.approx(8.0 / 4)
    assert r["per_scene"]["y"] == 0.0
    assert r["epe"] == pytest.approx(8.0 / 6)


def test_speed_bands_by_ground_truth_magnitude():
    """GT speeds 3, 10 (boundary -> s10-40), 39, 50; prediction zero so EPE = speed."""
    gt = _flow([[(3, 0), (6, 8), (0, 39), (30, 40)]])
    m = FlowMetrics()
    m.update_pair("p", "s", np.zeros_like(gt), gt)
    r = m.result()
    assert r["bands"]["s0-10"] == pytest.approx(3.0)
    assert r["bands"]["s10-40"] == pytest.approx((10.0 + 39.0) / 2)
    assert r["bands"]["s40+"] == pytest.approx(50.0)
    assert r["band_pixels"] == {"s0-10": 1, "s10-40": 2, "s40+": 1}


def test_empty_band_is_none():
    m = FlowMetrics()
    m.update_pair("p", "s", _flow([[(1, 0)]]), _flow([[(0, 0)]]))
    assert m.result()["bands"]["s40+"] is None


def test_outlier_rates():
    """EPEs 0.5, 1 (not > 1), 2, 4, 6 -> >1px: 3/5, >3px: 2/5, >5px: 1/5."""
    flow = _flow([[(0.5, 0), (1, 0), (2, 0), (4, 0), (6, 0)]])
    m = FlowMetrics()
    m.update_pair("p", "s", flow, np.zeros_like(flow))
    o = m.result()["outliers"]
    assert o == {"1px": pytest.approx(0.6), "3px": pytest.approx(0.4), "5px": pytest.approx(0.2)}


def test_valid_mask_excludes_pixels():
    flow = _flow([[(10, 0), (1, 0)], [(0, 0), (100, 0)]])
    gt = np.zeros_like(flow)
    valid = np.array([[1, 1], [1, 0]], np.float32)
    m = FlowMetrics()
    m.update_pair("p", "s", flow, gt, valid)
    r = m.result()
    assert r["pixels"] == 3
    assert r["epe"] == pytest.approx(11.0 / 3)
    assert r["outliers"]["5px"] == pytest.approx(1.0 / 3)


def test_batched_update_equals_pairwise():
    rng = np.random.RandomState(0)
    flows, gts = rng.randn(3, 4, 5, 2) * 20, rng.randn(3, 4, 5, 2) * 20
    valids = (rng.rand(3, 4, 5) > 0.3).astype(np.float32)
    a, b = FlowMetrics(), FlowMetrics()
    a.update(["0", "1"], ["s", "s"], flows[:2], gts[:2], valids[:2])
    a.update(["2"], ["t"], flows[2:], gts[2:], valids[2:])
    for i in range(3):
        b.update_pair(str(i), "s" if i < 2 else "t", flows[i], gts[i], valids[i])
    assert a.result() == b.result()
    err = np.sqrt(((flows - gts) ** 2).sum(-1))[valids > 0]
    assert a.result()["epe"] == pytest.approx(err.mean())


def test_shape_mismatch_raises():
    with pytest.raises(ValueError):
        FlowMetrics().update_pair("p", "s", np.zeros((2, 2, 2)), np.zeros((2, 3, 2)))

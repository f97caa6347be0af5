"""The Middlebury color wheel equals the reference implementation (flow_vis), unknown flow is black."""

import numpy as np
import pytest

from pwcflow.data import viz


def test_wheel_matches_flow_vis():
    flow_vis = pytest.importorskip("flow_vis")
    np.testing.assert_array_equal(viz.color_wheel(), flow_vis.make_colorwheel())
    flow = np.random.RandomState(0).randn(40, 50, 2).astype(np.float32) * 6
    np.testing.assert_array_equal(viz.flow_to_color(flow), flow_vis.flow_to_color(flow))


def test_directions_and_unknown():
    flow = np.zeros((1, 4, 2), np.float32)
    flow[0, 0] = (1, 0)     # right: red-ish in the Middlebury wheel's convention (hue at angle pi)
    flow[0, 1] = (-1, 0)    # left
    flow[0, 2] = (0, 0)     # still: white
    flow[0, 3] = (1e10, 0)  # unknown: black
    img = viz.flow_to_color(flow, max_flow=1.0)
    assert tuple(img[0, 2]) == (255, 255, 255)
    assert tuple(img[0, 3]) == (0, 0, 0)
    assert not np.array_equal(img[0, 0], img[0, 1])


def test_error_map_and_side_by_side():
    gt = np.zeros((8, 8, 2), np.float32)
    flow = gt.copy()
    flow[:, 4:] = (10, 0)
    err = viz.error_map(flow, gt, max_err=10)
    assert err[:, :4].max() == 0 and (err[:, 4:] == 255).all()
    sheet = viz.side_by_side([err, err], gap=2)
    assert sheet.shape == (8, 18, 3)

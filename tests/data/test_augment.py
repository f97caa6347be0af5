"""Augmentation keeps frames and flow consistent: warping augmented frame 2 by the augmented flow gives frame 1."""

import cv2
import numpy as np
import pytest

from pwcflow.data.augment import AugmentSpec, augment, augment_spec, random_crop, zoom
from pwcflow.data.synthetic import SyntheticSpec, make_pair
from pwcflow.errors import UserError

OFF = dict(fliplr=0.0, flipud=0.0, translate=(0.0, 0.05), scale=(0.0, 0.05))


def pair(index=0, size=(96, 128)):
    img1, img2, flow = make_pair(SyntheticSpec(size=size, max_motion=6.0, seed=11), "train", index)
    return img1, img2, flow, np.ones(flow.shape[:2], np.float32)


def match(img1, img2, flow, valid):
    """(share of checked pixels that frame 2 warped by the flow reproduces, mean error) over valid pixels that
    land inside frame 2 on non-black content (translation pads frame 2 with black)."""
    h, w = flow.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    warped = cv2.remap(img2.astype(np.float32), mx, my, cv2.INTER_LINEAR)
    inside = (mx >= 1) & (mx <= w - 2) & (my >= 1) & (my <= h - 2) & (valid > 0)
    inside &= cv2.remap((img2.max(axis=2) > 0).astype(np.float32), mx, my, cv2.INTER_NEAREST) > 0
    err = np.abs(warped - img1.astype(np.float32)).max(axis=2)[inside]
    return float((err < 16).mean()), float(err.mean())


def test_flips_negate_the_flipped_component():
    img1, img2, flow, valid = pair()
    valid[0, 0] = 0
    a1, a2, af, av = augment((img1, img2, flow, valid), AugmentSpec("basic", **dict(OFF, fliplr=1.0)),
                             np.random.RandomState(0))
    assert np.array_equal(a1, img1[:, ::-1]) and np.array_equal(a2, img2[:, ::-1])
    assert np.array_equal(af[..., 0], -flow[:, ::-1, 0]) and np.array_equal(af[..., 1], flow[:, ::-1, 1])
    assert av[0, -1] == 0 and av.sum() == valid.sum()
    b1, _, bf, bv = augment((img1, img2, flow, valid), AugmentSpec("basic", **dict(OFF, flipud=1.0)),
                            np.random.RandomState(0))
    assert np.array_equal(b1, img1[::-1]) and bv[-1, 0] == 0
    assert np.array_equal(bf[..., 1], -flow[::-1, :, 1]) and np.array_equal(bf[..., 0], flow[::-1, :, 0])
    for out in (a1, a2, af, av, b1, bf):
        assert out.flags["C_CONTIGUOUS"]


def test_translate_moves_frame_two_only_and_adds_to_flow():
    img1, img2, flow, valid = pair()
    spec = AugmentSpec("heavy", **dict(OFF, translate=(1.0, 0.05)))
    a1, a2, af, av = augment((img1, img2, flow, valid), spec, np.random.RandomState(4))
    shift = af - flow
    tw, th = np.round(shift[0, 0])
    assert np.allclose(shift, [tw, th], atol=1e-4) and (tw, th) != (0, 0)
    assert abs(tw) <= 0.05 * 128 and abs(th) <= 0.05 * 96
    assert np.array_equal(a1, img1) and np.array_equal(av, valid)
    m = np.float32([[1, 0, tw], [0, 1, th]])
    assert np.array_equal(a2, cv2.warpAffine(img2, m, (128, 96)))  # tfoptflow's cv2.warpAffine shift


@pytest.mark.parametrize("ratio", [0.95, 1.05])
def test_zoom_scales_flow_and_marks_padding_invalid(ratio):
    img1, img2, flow, valid = pair()
    z1, z2, zf, zv = zoom((img1, img2, flow, valid), ratio)
    assert z1.shape == img1.shape and zf.shape == flow.shape
    centre = zf[40:56, 56:72] / ratio
    src = flow[40:56, 56:72]
    assert np.abs(centre - src).mean() < 0.5
    if ratio < 1:
        assert zv[0].max() == 0 and zv[:, 0].max() == 0 and zv[48, 64] == 1
    else:
        assert zv.min() == 1
    assert match(z1, z2, zf, zv)[0] > 0.85


def test_random_crop_is_one_window_for_all():
    img1, img2, flow, valid = pair()
    c = random_crop((img1, img2, flow, valid), (64, 96), np.random.RandomState(3))
    assert [a.shape[:2] for a in c] == [(64, 96)] * 4
    ys, xs = np.argwhere((img1[:, :, 0] == c[0][0, 0, 0]) & (img1[:, :, 1] == c[0][0, 0, 1])).T
    assert any(np.array_equal(img2[y:y + 64, x:x + 96], c[1]) and np.array_equal(flow[y:y + 64, x:x + 96], c[2])
               for y, x in zip(ys, xs))


def test_heavy_augmentation_keeps_frames_and_flow_consistent():
    """The issue's acceptance test, on the synthetic set: for many random draws of the full 'heavy' recipe
    (crop, flips, translate, zoom), warping augmented frame 2 by the augmented flow reproduces augmented frame 1."""
    spec = AugmentSpec("heavy", fliplr=0.5, flipud=0.5, translate=(0.7, 0.05), scale=(0.7, 0.05))
    shares, errors, zero_errors = [], [], []
    for i in range(16):
        rng = np.random.RandomState(100 + i)
        a1, a2, af, av = augment(random_crop(pair(i), (64, 96), rng), spec, rng)
        share, err = match(a1, a2, af, av)
        shares.append(share)
        errors.append(err)
        zero_errors.append(match(a1, a2, np.zeros_like(af), av)[1])
    assert min(shares) > 0.8 and np.mean(shares) > 0.9, shares
    assert np.mean(errors) < 0.3 * np.mean(zero_errors)


def test_the_consistency_check_catches_a_wrong_flow():
    """Sanity of the check above: flipping the frames but not negating u is detected."""
    img1, img2, flow, valid = pair(3)
    good = match(img1[:, ::-1], img2[:, ::-1], flow[:, ::-1] * np.float32([-1, 1]), valid)[0]
    bad = match(img1[:, ::-1], img2[:, ::-1], np.ascontiguousarray(flow[:, ::-1]), valid)[0]
    assert good > 0.9 and bad < good - 0.2


def test_deterministic_given_the_random_state():
    spec = AugmentSpec("heavy", 0.5, 0.5, (0.5, 0.05), (0.5, 0.05))
    outs = [augment(random_crop(pair(), (64, 96), np.random.RandomState(s)), spec, np.random.RandomState(s))
            for s in (7, 7, 8)]
    assert all(np.array_equal(a, b) for a, b in zip(outs[0], outs[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(outs[0], outs[2]))


def test_none_changes_nothing():
    arrays = pair()
    out = augment(arrays, AugmentSpec("none", 1.0, 1.0, (1.0, 0.05), (1.0, 0.05)), np.random.RandomState(0))
    assert all(np.array_equal(a, b) for a, b in zip(arrays, out))


def test_augment_spec_from_config_block():
    spec = augment_spec({"mode": "heavy", "fliplr": 0.5, "flipud": 0.0, "translate": [0.5, 0.05], "scale": [0.5, 0.1]})
    assert spec == AugmentSpec("heavy", 0.5, 0.0, (0.5, 0.05), (0.5, 0.1))
    assert augment_spec({}) == AugmentSpec()
    bad = (({"mode": "extreme"}, "mode"), ({"flipud": -1}, "flipud"), ({"translate": [2, 0.1]}, "translate"),
           ({"scale": [0.5, 1.5]}, "scale"), ({"rotate": 1}, "rotate"))
    for block, key in bad:
        with pytest.raises(UserError, match=r"dataset\.augment\." + key):
            augment_spec(block)

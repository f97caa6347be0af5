"""Round trips of every flow/image format, and clear errors for corrupt, truncated or wrong files."""

import numpy as np
import pytest

from pwcflow.data import flowio
from pwcflow.errors import UserError


def _flow(h=7, w=11, seed=0):
    return np.random.RandomState(seed).uniform(-40, 40, (h, w, 2)).astype(np.float32)


def test_flo_round_trip(tmp_path):
    flow = _flow()
    path = str(tmp_path / "a.flo")
    flowio.write_flo(path, flow)
    assert np.array_equal(flowio.read_flo(path), flow)
    got, valid = flowio.read_flow(path)
    assert np.array_equal(got, flow) and valid.shape == (7, 11) and valid.min() == 1
    raw = open(path, "rb").read()
    assert raw[:4] == b"PIEH" and len(raw) == 12 + 7 * 11 * 8


def test_flo_unknown_flow_is_invalid(tmp_path):
    flow = _flow()
    flow[2, 3] = 1e10
    flow[4, 5, 1] = np.nan
    path = str(tmp_path / "u.flo")
    flowio.write_flo(path, flow)
    got, valid = flowio.read_flow(path)
    assert valid[2, 3] == 0 and valid[4, 5] == 0 and valid.sum() == 7 * 11 - 2
    assert np.all(got[2, 3] == 0) and np.all(got[4, 5] == 0) and np.isfinite(got).all()


@pytest.mark.parametrize("channels", [3, 1])
def test_pfm_round_trip(tmp_path, channels):
    data = np.random.RandomState(1).randn(5, 9, channels).astype(np.float32)
    path = str(tmp_path / "a.pfm")
    flowio.write_pfm(path, data)
    got = flowio.read_pfm(path)
    assert got.shape == (5, 9, channels) and np.array_equal(got, data)
    assert open(path, "rb").read(2) == (b"PF" if channels == 3 else b"Pf")


def test_pfm_big_endian_and_bottom_up(tmp_path):
    """The reader honours a positive scale (big-endian) and flips PFM's bottom-to-top rows."""
    data = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    path = tmp_path / "be.pfm"
    path.write_bytes(b"PF\n3 2\n1.0\n" + np.flipud(data).astype(">f4").tobytes())
    assert np.array_equal(flowio.read_pfm(str(path)), data)


def test_pfm_as_flow_keeps_two_channels(tmp_path):
    flow = _flow(4, 6)
    path = str(tmp_path / "t.pfm")
    flowio.write_pfm(path, np.concatenate([flow, np.zeros_like(flow[..., :1])], axis=2))
    got, valid = flowio.read_flow(path)
    assert np.array_equal(got, flow) and valid.min() == 1


def test_kitti_round_trip_with_validity(tmp_path):
    flow = np.round(_flow(6, 10) * 64) / 64  # KITTI stores 1/64 px steps
    valid = np.ones((6, 10), np.float32)
    valid[0] = 0
    path = str(tmp_path / "000000_10.png")
    flowio.write_kitti_flow(path, flow, valid)
    got, got_valid = flowio.read_flow(path)
    assert np.array_equal(got_valid, valid)
    assert np.array_equal(got[1:], flow[1:]) and np.all(got[0] == 0)


@pytest.mark.parametrize("ext", [".png", ".ppm"])
def test_image_round_trip_is_rgb(tmp_path, ext):
    img = np.random.RandomState(2).randint(0, 256, (5, 8, 3)).astype(np.uint8)
    img[0, 0] = (255, 0, 0)
    path = str(tmp_path / ("a" + ext))
    flowio.write_image(path, img)
    got = flowio.read_image(path)
    assert got.dtype == np.uint8 and np.array_equal(got, img) and tuple(got[0, 0]) == (255, 0, 0)


def _expect(path, reader, *words):
    with pytest.raises(UserError) as err:
        reader(str(path))
    msg = str(err.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w in msg
    return msg


def test_flo_corrupt_and_truncated(tmp_path):
    path = tmp_path / "bad.flo"
    flowio.write_flo(str(path), _flow())
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    _expect(path, flowio.read_flo, "truncated")
    path.write_bytes(raw + b"\0\0\0\0")
    _expect(path, flowio.read_flo, "oversized")
    path.write_bytes(b"JUNK" + raw[4:])
    _expect(path, flowio.read_flo, "magic")
    path.write_bytes(raw[:4] + np.array([0, -3], "<i4").tobytes() + raw[12:])
    _expect(path, flowio.read_flo, "header")
    path.write_bytes(raw[:6])
    _expect(path, flowio.read_flow, "magic")


def test_pfm_corrupt_and_truncated(tmp_path):
    path = tmp_path / "bad.pfm"
    flowio.write_pfm(str(path), np.zeros((4, 5, 3), np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[:-7])
    _expect(path, flowio.read_pfm, "truncated")
    path.write_bytes(b"P6\n5 4\n255\n" + raw[12:])
    _expect(path, flowio.read_pfm, "PFM")
    path.write_bytes(b"")
    _expect(path, flowio.read_flow, "PFM")
    flowio.write_pfm(str(path), np.zeros((4, 5), np.float32))
    _expect(path, flowio.read_flow, "channel")


def test_other_bad_files(tmp_path):
    _expect(tmp_path / "missing.flo", flowio.read_flow, "not found")
    _expect(tmp_path / "missing.png", flowio.read_image, "not found")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _expect(junk, flowio.read_image, "corrupt")
    eight_bit = tmp_path / "8bit.png"
    flowio.write_image(str(eight_bit), np.zeros((4, 4, 3), np.uint8))
    _expect(eight_bit, flowio.read_kitti_flow, "16-bit")
    good = tmp_path / "img.png"
    flowio.write_image(str(good), np.full((32, 32, 3), 7, np.uint8))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:40])
    _expect(truncated, flowio.read_image, "corrupt")
    _expect(tmp_path / "x.txt", flowio.read_flow, "unsupported")


def test_writers_are_atomic(tmp_path):
    """A failed write leaves neither a partial file nor a temporary file behind."""
    with pytest.raises(ValueError):
        flowio.write_flo(str(tmp_path / "x.flo"), np.zeros((3, 3, 3), np.float32))
    assert list(tmp_path.iterdir()) == []

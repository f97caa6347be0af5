"""``python -m pwcflow.predict input=...`` on generated sequences (folder, glob, video, list) and the
forward-backward occlusion check on generated pairs with known occlusions. Random sm-6-2 weights, 64x96 frames."""

import json
import os

import cv2
import numpy as np
import pytest
from conftest import error_line, random_checkpoint, run_module
from support.layouts import sequence

from pwcflow.data import flowio, viz
from pwcflow.inference import consistency
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model.pwcnet import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
SIZE = (64, 96)
NAMES = ("frame_8", "frame_9", "frame_10", "frame_11")  # natural order differs from string order


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A randomly initialised sm-6-2 checkpoint dir."""
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=5)


@pytest.fixture(scope="module")
def predictor(ckpt):
    p = FlowPredictor(SM, str(ckpt))
    yield p
    p.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    imgs, _ = sequence(SIZE, len(NAMES), (2, 1), seed=7)
    for name, img in zip(NAMES, imgs):
        flowio.write_image(str(d / (name + ".png")), img)
    return d


def _predict(tmp_path, ckpt, *overrides):
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _expect(predictor, a, b):
    """What the one-pair form computes (``FlowPredictor.predict`` on the two frames)."""
    return predictor.predict(flowio.read_image(str(a)), flowio.read_image(str(b)))


@pytest.mark.slow
def test_folder_matches_one_pair_resumes_and_shares_scale(folder, ckpt, predictor, tmp_path):
    out = tmp_path / "out"
    proc = _predict(tmp_path, ckpt, "input=%s" % folder, "out=%s" % out, "batch=2", "viz=true", "video=true")
    assert "predict: 3/3 pairs" in proc.stderr  # plain progress lines, not a tqdm bar, off a terminal
    assert sorted(os.listdir(str(out))) == sorted(["frame_8.flo", "frame_9.flo", "frame_10.flo", "viz", "flow.mp4"])
    flows = {}
    for a, b in zip(NAMES[:-1], NAMES[1:]):
        flows[a] = flowio.read_flo(str(out / (a + ".flo")))
        np.testing.assert_allclose(flows[a], _expect(predictor, folder / (a + ".png"), folder / (b + ".png")),
                                   atol=1e-4)
    one = tmp_path / "one.flo"  # the one-pair command itself, on the first pair
    _predict(tmp_path, ckpt, "img1=%s" % (folder / "frame_8.png"), "img2=%s" % (folder / "frame_9.png"),
             "out=%s" % one)
    np.testing.assert_allclose(flows["frame_8"], flowio.read_flo(str(one)), atol=1e-4)
    # one colour scale for the whole sequence: the largest |flow| over all pairs
    scale = max(float(np.sqrt((f.astype(np.float64) ** 2).sum(-1)).max()) for f in flows.values())
    assert json.loads((out / "viz" / "scale.json").read_text())["max_flow"] == pytest.approx(scale, rel=1e-6)
    for stem, f in flows.items():
        assert (flowio.read_image(str(out / "viz" / (stem + ".png"))) == viz.flow_to_color(f, scale)).all()
    cap = cv2.VideoCapture(str(out / "flow.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 3
    # resume: a rerun predicts nothing; after removing one output only that pair is redone
    mtimes = {s: os.stat(str(out / (s + ".flo"))).st_mtime_ns for s in flows}
    proc = _predict(tmp_path, ckpt, "input=%s" % folder, "out=%s" % out, "batch=2")
    assert "0 predicted, 3 already done" in proc.stdout + proc.stderr
    os.remove(str(out / "frame_9.flo"))
    proc = _predict(tmp_path, ckpt, "input=%s" % folder, "out=%s" % out, "batch=2")
    assert "1 predicted, 2 already done" in proc.stdout + proc.stderr
    assert {s: os.stat(str(out / (s + ".flo"))).st_mtime_ns for s in ("frame_8", "frame_10")} == \
        {s: mtimes[s] for s in ("frame_8", "frame_10")}
    np.testing.assert_allclose(flowio.read_flo(str(out / "frame_9.flo")), flows["frame_9"], atol=1e-4)


@pytest.mark.slow
def test_glob_npy_bidirectional(folder, ckpt, predictor, tmp_path):
    out = tmp_path / "out"
    _predict(tmp_path, ckpt, "input=%s" % (folder / "frame_*.png"), "out=%s" % out, "format=npy",
             "bidirectional=true", "consistency.alpha2=0.75")
    for a, b in zip(NAMES[:-1], NAMES[1:]):
        fwd = np.load(str(out / (a + ".npy")))
        bwd = np.load(str(out / "backward" / (a + ".npy")))
        np.testing.assert_allclose(fwd, _expect(predictor, folder / (a + ".png"), folder / (b + ".png")), atol=1e-4)
        np.testing.assert_allclose(bwd, _expect(predictor, folder / (b + ".png"), folder / (a + ".png")), atol=1e-4)
        occ, conf = consistency.occlusion(fwd, bwd, 0.01, 0.75)
        assert (cv2.imread(str(out / "occlusion" / (a + ".png")), cv2.IMREAD_UNCHANGED) == occ * 255).all()
        saved = cv2.imread(str(out / "confidence" / (a + ".png")), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
        assert np.abs(saved - conf).max() <= 0.5 / 255 + 1e-6


@pytest.mark.slow
def test_list_with_size_change_png16(tmp_path, ckpt, predictor):
    """A list file whose pairs change size along the list; KITTI 16-bit outputs (1/64 px steps)."""
    imgs_a, _ = sequence(SIZE, 2, (1, 0), seed=8)
    imgs_b, _ = sequence((64, 128), 2, (0, 2), seed=9)
    for name, img in zip(("a1", "a2", "b1", "b2"), imgs_a + imgs_b):
        flowio.write_image(str(tmp_path / "in" / (name + ".png")), img)
    listing = "# two pairs\na1.png a2.png\n\n%s b2.png\n" % (tmp_path / "in" / "b1.png")
    (tmp_path / "in" / "pairs.txt").write_text(listing)
    out = tmp_path / "out"
    _predict(tmp_path, ckpt, "input=%s" % (tmp_path / "in" / "pairs.txt"), "out=%s" % out, "format=png16")
    assert sorted(os.listdir(str(out))) == ["a1.png", "b1.png"]
    for a, b in (("a1", "a2"), ("b1", "b2")):
        got, valid = flowio.read_kitti_flow(str(out / (a + ".png")))
        want = _expect(predictor, tmp_path / "in" / (a + ".png"), tmp_path / "in" / (b + ".png"))
        assert got.shape == want.shape and valid.all()
        assert np.abs(got - want).max() <= 0.5 / 64 + 1e-4  # rounding to 1/64 px, plus float noise


@pytest.mark.slow
def test_video_input(tmp_path, ckpt, predictor):
    imgs, _ = sequence(SIZE, 3, (1, 1), seed=10)
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (SIZE[1], SIZE[0]))
    for img in imgs:
        writer.write(img[:, :, ::-1].copy())
    writer.release()
    cap = cv2.VideoCapture(path)
    decoded = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        decoded.append(bgr[:, :, ::-1].copy())
    assert len(decoded) == 3
    out = tmp_path / "out"
    _predict(tmp_path, ckpt, "input=%s" % path, "out=%s" % out)
    assert sorted(os.listdir(str(out))) == ["frame_000000.flo", "frame_000001.flo"]
    for i in range(2):
        np.testing.assert_allclose(flowio.read_flo(str(out / ("frame_%06d.flo" % i))),
                                   predictor.predict(decoded[i], decoded[i + 1]), atol=1e-4)


@pytest.mark.slow
def test_bad_frame_one_line_keeps_finished(folder, ckpt, tmp_path):
    bad = tmp_path / "seq"
    bad.mkdir()
    for name in NAMES:
        (bad / (name + ".png")).write_bytes((folder / (name + ".png")).read_bytes())
    (bad / "frame_10.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "input=%s" % bad, "out=%s" % out,
                      "batch=4", cwd=tmp_path)
    line = error_line(proc)
    assert "cannot read image" in line and "frame_10.png" in line
    assert os.listdir(str(out)) == ["frame_8.flo"]  # finished before the bad frame, flushed and kept
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "input=%s" % (tmp_path / "nope"),
                      "out=%s" % out, cwd=tmp_path)
    assert "input not found" in error_line(proc)

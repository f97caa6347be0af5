"""Benchmark side of eval: KITTI 16-bit PNGs, Fl, Sintel matched/unmatched EPE, KITTI and Sintel submissions."""

import json
import os
import shutil
import stat
import zipfile

import cv2
import numpy as np
import pytest
from conftest import random_checkpoint, run_module
from omegaconf import OmegaConf
from support.layouts import make_kitti, make_sintel

from pwcflow import eval as evaluation
from pwcflow import results
from pwcflow.data import flowio
from pwcflow.data.datasets import DatasetSpec
from pwcflow.evaluation import report
from pwcflow.evaluation.metrics import FlowMetrics
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model.pwcnet import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=21)


def test_kitti_png_round_trip_independent_decoder(tmp_path):
    """flowio's KITTI writer decoded by hand: uint16 PNG, BGR on disk = (valid, v, u) as x*64 + 2^15."""
    rng = np.random.RandomState(0)
    flow = rng.uniform(-300, 300, (37, 53, 2)).astype(np.float32)
    valid = (rng.uniform(size=(37, 53)) > 0.3).astype(np.float32)
    path = str(tmp_path / "000000_10.png")
    flowio.write_kitti_flow(path, flow, valid)
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.shape == (37, 53, 3)
    u = (raw[:, :, 2].astype(np.float64) - 32768.0) / 64.0
    v = (raw[:, :, 1].astype(np.float64) - 32768.0) / 64.0
    assert np.abs(u - flow[..., 0]).max() <= 1 / 128.0 and np.abs(v - flow[..., 1]).max() <= 1 / 128.0
    assert (raw[:, :, 0] == valid).all()
    back, back_valid = flowio.read_kitti_flow(path)  # and flowio's own reader agrees
    assert (back_valid == valid).all() and np.abs(back - flow * valid[..., None]).max() <= 1 / 128.0


def test_fl_and_matched_unmatched_by_hand():
    """Six pixels whose errors and ground-truth speeds are set by hand."""
    gt = np.zeros((1, 6, 2), np.float32)
    gt[0, :, 0] = [10.0, 100.0, 1.0, 0.0, 50.0, 20.0]
    err = np.array([4.0, 4.0, 2.9, 3.5, 2.6, 10.0])  # > 3 px and > 5 % |gt|: yes, no (5), no, yes, no, (invalid)
    flow = gt.copy()
    flow[0, :, 1] = err
    valid = np.array([[1, 1, 1, 1, 1, 0]], np.float32)
    occluded = np.array([[0, 1, 0, 1, 0, 1]], bool)
    m = FlowMetrics()
    m.update_pair("p", "s", flow, gt, valid, occluded)
    r = m.result()
    assert r["fl_all"] == pytest.approx(2 / 5.0)
    assert r["epe_matched"] == pytest.approx((4.0 + 2.9 + 2.6) / 3)
    assert r["epe_unmatched"] == pytest.approx((4.0 + 3.5) / 2)
    r0 = FlowMetrics()
    r0.update_pair("p", "s", flow, gt)
    assert r0.result()["fl_all"] == pytest.approx(3 / 6.0) and r0.result()["epe_matched"] is None
    rows = dict(report.summary_rows(dict(r, pairs=1, fl_gt="noc")))
    assert rows["Fl-noc (EPE > 3 px and > 5 %)"] == "40.00 %" and rows["EPE unmatched (occluded)"] == "3.750"


@pytest.mark.slow
def test_kitti_testing_layout_gives_submission(ckpt, tmp_path):
    """dataset=kitti2015_test and kitti2012_test: submission/flow/NNNNNN_10.png + a zip of exactly those."""
    root15 = make_kitti(tmp_path / "k15", n=2, size=(40, 120))
    root12 = str(tmp_path / "k12")
    shutil.copytree(os.path.join(root15, "testing", "image_2"), os.path.join(root12, "testing", "colored_0"))
    p = FlowPredictor(SM, str(ckpt))
    for ds, root in (("kitti2015_test", root15), ("kitti2012_test", root12)):
        out = tmp_path / ("out_" + ds)
        proc = run_module("pwcflow.eval", "ckpt=%s" % ckpt, "model=sm-6-2", "dataset=%s" % ds,
                          "dataset.root=%s" % root, "out=%s" % out, "progress=false", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        zpath = out / ("%s_submission.zip" % ds)
        assert str(zpath) in proc.stdout
        with zipfile.ZipFile(str(zpath)) as zf:
            assert sorted(zf.namelist()) == ["flow/000000_10.png", "flow/000001_10.png"]
        for i in range(2):
            got, valid = flowio.read_kitti_flow(str(out / "submission" / "flow" / ("%06d_10.png" % i)))
            frames = [flowio.read_image(os.path.join(root, "testing", "image_2" if ds == "kitti2015_test"
                                                     else "colored_0", "%06d_1%d.png" % (i, k))) for k in (0, 1)]
            assert valid.all() and np.abs(got - p.predict(*frames)).max() <= 0.5 / 64 + 1e-4
    p.close()


@pytest.mark.slow
def test_kitti_fl_noc_in_metrics_report_and_results(ckpt, tmp_path):
    root = make_kitti(tmp_path / "k15", n=2, size=(40, 120), with_test=False)
    out = tmp_path / "out"
    proc = run_module("pwcflow.eval", "ckpt=%s" % ckpt, "model=sm-6-2", "dataset=kitti2015", "dataset.gt=noc",
                      "dataset.root=%s" % root, "out=%s" % out, "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    p = FlowPredictor(SM, str(ckpt))
    bad = n = 0
    for i in range(2):
        frames = [flowio.read_image(os.path.join(root, "training", "image_2", "%06d_1%d.png" % (i, k)))
                  for k in (0, 1)]
        gt, valid = flowio.read_kitti_flow(os.path.join(root, "training", "flow_noc", "%06d_10.png" % i))
        err = np.sqrt(((p.predict(*frames).astype(np.float64) - gt) ** 2).sum(-1))[valid > 0]
        mag = np.sqrt((gt.astype(np.float64) ** 2).sum(-1))[valid > 0]
        bad += int(((err > 3) & (err / np.maximum(mag, 1e-12) > 0.05)).sum())
        n += err.size
    p.close()
    assert m["fl_gt"] == "noc" and m["fl_all"] == pytest.approx(bad / n, abs=1e-9)
    assert "Fl-noc" in (out / "metrics.md").read_text() and "Fl-noc" in (out / "index.html").read_text()
    row = results.summarize(str(out))
    assert row["fl_all"] == m["fl_all"]


@pytest.mark.slow
def test_sintel_matched_unmatched_and_bundler(ckpt, tmp_path):
    root = make_sintel(tmp_path / "sintel", scenes=("alley_1",), frames=2, size=(64, 64))
    occ = np.zeros((64, 64), np.uint8)
    occ[:, :16] = 255
    flowio.write_gray(os.path.join(root, "training", "occlusions", "alley_1", "frame_0001.png"), occ)
    out = tmp_path / "out"
    proc = run_module("pwcflow.eval", "ckpt=%s" % ckpt, "model=sm-6-2", "dataset=sintel_clean",
                      "dataset.root=%s" % root, "out=%s" % out, "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    p = FlowPredictor(SM, str(ckpt))
    frames = [flowio.read_image(os.path.join(root, "training", "clean", "alley_1", "frame_%04d.png" % k))
              for k in (1, 2)]
    gt = flowio.read_flo(os.path.join(root, "training", "flow", "alley_1", "frame_0001.flo"))
    err = np.sqrt(((p.predict(*frames).astype(np.float64) - gt) ** 2).sum(-1))
    p.close()
    assert m["epe_matched"] == pytest.approx(err[:, 16:].mean(), rel=1e-5)
    assert m["epe_unmatched"] == pytest.approx(err[:, :16].mean(), rel=1e-5)
    assert "EPE unmatched" in (out / "metrics.md").read_text()
    # Sintel test: bundler=PATH runs it on <flo_dir>/clean and /final (a stand-in script that checks its arguments)
    fake = tmp_path / "bundler"
    fake.write_text("#!/bin/sh\ntest -f \"$1/ambush_1/frame_0001.flo\" && test -f \"$2/ambush_1/frame_0001.flo\" "
                    "&& echo bundled > \"$3\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "test_out"
    proc = run_module("pwcflow.eval", "ckpt=%s" % ckpt, "model=sm-6-2", "dataset=sintel_test", "dataset.root=%s" % root,
                      "out=%s" % out, "progress=false", "bundler=%s" % fake, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "sintel_submission.lzma").read_text() == "bundled\n"


def test_sintel_bundler_command_printed(capsys, tmp_path):
    """Without bundler=, eval prints the exact command (clean dir, final dir, output .lzma)."""
    ds = DatasetSpec(name="sintel_test", kind="sintel", passes=("clean", "final"))
    evaluation._submit(OmegaConf.create({"bundler": None}), ds, "test", str(tmp_path / "flow"), str(tmp_path))
    line = capsys.readouterr().out
    assert "bundler" in line and " %s %s %s " % (tmp_path / "flow" / "clean", tmp_path / "flow" / "final",
                                                 tmp_path / "sintel_submission.lzma") in line

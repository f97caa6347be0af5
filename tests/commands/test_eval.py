"""``python -m pwcflow.eval`` end to end on generated data sets, Sintel test export, bad inputs."""

import json
import os

import numpy as np
import pytest
from conftest import error_line, random_checkpoint, run_module
from support.layouts import make_sintel

from pwcflow.data import flowio
from pwcflow.inference.predictor import FlowPredictor, to_input
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.tf1 import tf

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
SIZE = (64, 128)


@pytest.fixture(scope="module")
def sintel(tmp_path_factory):
    return make_sintel(tmp_path_factory.mktemp("sintel"), size=SIZE)


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """A pwcflow training run dir with a randomly initialised sm-6-2 checkpoint in ``checkpoints/``."""
    run = tmp_path_factory.mktemp("run")
    random_checkpoint(run / "checkpoints", seed=11, step=40)
    return run


def _eval(tmp_path, *overrides):
    out = tmp_path / "out"
    proc = run_module("pwcflow.eval", "model=sm-6-2", "out=%s" % out, "progress=false", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text())


def _expected_epe(ckpt, root, scenes=("alley_1", "bamboo_2"), frames=(1, 2)):
    """All-pixel EPE computed here, pair by pair, with the same predictor."""
    p = FlowPredictor(SM, str(ckpt))
    errs, per_scene = [], {}
    for scene in scenes:
        for t in frames:
            img = [flowio.read_image(os.path.join(root, "training", "clean", scene, "frame_%04d.png" % k))
                   for k in (t, t + 1)]
            gt = flowio.read_flo(os.path.join(root, "training", "flow", scene, "frame_%04d.flo" % t))
            flow = p.predict_batch(to_input(*img)[None])[0]
            err = np.sqrt(((flow.astype(np.float64) - gt) ** 2).sum(-1))
            errs.append(err)
            per_scene.setdefault(scene, []).append(err)
    p.close()
    return float(np.mean(errs)), {s: float(np.mean(v)) for s, v in per_scene.items()}


def test_eval_sintel_clean_tfoptflow_checkpoint(sintel, ref_dir, tmp_path):
    """metrics.json matches EPE computed independently; md, tb, pictures, contact sheet written."""
    out, m = _eval(tmp_path, "ckpt=%s" % (ref_dir / "sm" / "pwcnet.ckpt"), "dataset=sintel_clean",
                   "dataset.root=%s" % sintel, "batch=2", "pictures=true", "pictures_max=3")
    epe, per_scene = _expected_epe(ref_dir / "sm", sintel)
    assert m["pairs"] == 4 and m["pixels"] == 4 * SIZE[0] * SIZE[1]
    assert m["epe"] == pytest.approx(epe, rel=1e-5)
    assert m["per_scene"] == pytest.approx(per_scene, rel=1e-5)
    assert sorted(m["per_pair"]) == ["clean/alley_1/frame_0001", "clean/alley_1/frame_0002",
                                     "clean/bamboo_2/frame_0001", "clean/bamboo_2/frame_0002"]
    assert set(m["bands"]) == {"s0-10", "s10-40", "s40+"} and m["bands"]["s0-10"] == pytest.approx(epe, rel=1e-5)
    assert set(m["outliers"]) == {"1px", "3px", "5px"}
    assert 0 <= m["outliers"]["5px"] <= m["outliers"]["3px"] <= m["outliers"]["1px"] <= 1
    assert (m["dataset"], m["split"], m["split_role"]) == ("sintel_clean", "all", "training-data")
    assert m["ckpt"].endswith("pwcnet.ckpt") and m["model"] == "sm-6-2"
    md = (out / "metrics.md").read_text()
    assert "training-data" in md and "%.3f" % epe in md and "| alley_1 |" in md
    events = [f for f in os.listdir(str(out / "tb")) if f.startswith("events.out.tfevents")]
    scalars = {v.tag: v.simple_value for e in tf.train.summary_iterator(str(out / "tb" / events[0]))
               for v in e.summary.value}
    assert scalars["eval/sintel_clean/all/epe"] == pytest.approx(epe, rel=1e-5)
    assert "eval/sintel_clean/all/outliers_3px" in scalars and "eval/sintel_clean/all/scene/alley_1" in scalars
    pics = sorted(str(p.relative_to(out / "pictures")) for p in (out / "pictures").rglob("*.png"))
    assert len(pics) == 6
    assert {"clean/alley_1/frame_0001_flow.png", "clean/alley_1/frame_0001_error.png"} <= set(pics)
    assert flowio.read_image(str(out / "pictures" / pics[0])).shape == SIZE + (3,)
    sheet = flowio.read_image(str(out / "contact_sheet.png"))
    assert sheet.shape[1] >= 4 * 256
    assert "contact_sheet.png" in (out / "index.html").read_text()


def test_eval_synthetic_own_run_dir(own_run, tmp_path):
    """A pwcflow training run dir as ckpt; the synthetic set's val split is labelled held-out."""
    _, m = _eval(tmp_path, "ckpt=%s" % own_run, "dataset=synthetic", "dataset.val_size=2", "dataset.size=[64,128]",
                 "dataset.max_motion=4")
    assert m["ckpt"].endswith("pwcnet.ckpt-40")
    assert (m["split"], m["split_role"], m["pairs"]) == ("val", "held-out", 2)
    assert np.isfinite(m["epe"]) and m["epe"] > 0


def test_sintel_test_export_layout(sintel, ref_dir, tmp_path):
    """dataset=sintel_test: <pass>/<scene>/frame_XXXX.flo for both passes, N-1 flows per scene."""
    out, m = _eval(tmp_path, "ckpt=%s" % (ref_dir / "sm"), "dataset=sintel_test", "dataset.root=%s" % sintel)
    flo = out / "flow"
    got = sorted(str(p.relative_to(flo)) for p in flo.rglob("*") if p.is_file())
    assert got == ["clean/ambush_1/frame_0001.flo", "clean/ambush_1/frame_0002.flo",
                   "final/ambush_1/frame_0001.flo", "final/ambush_1/frame_0002.flo"]
    for f in got:
        flow = flowio.read_flo(str(flo / f))
        assert flow.shape == SIZE + (2,) and np.isfinite(flow).all()
    assert (m["split"], m["split_role"], m["pairs"], m["epe"]) == ("test", "test", 4, None)
    assert m["flo_dir"] == str(flo)


@pytest.mark.parametrize("case,needle", [
    ("missing_ckpt", "checkpoint not found"),
    ("variant", "set model=sm-6-2"),
    ("empty", "is empty"),
    ("no_gt", "frame_0002.flo"),
    ("no_root", "dataset.root"),
])
def test_eval_bad_inputs(case, needle, sintel, ref_dir, tmp_path):
    args = {"ckpt": ref_dir / "sm", "model": "sm-6-2", "dataset": "sintel_clean", "dataset.root": sintel}
    if case == "missing_ckpt":
        args["ckpt"] = tmp_path / "nope" / "pwcnet.ckpt-5"
    elif case == "variant":
        args["model"] = "lg-6-2"
    elif case == "empty":
        empty = tmp_path / "empty"
        (empty / "training" / "clean").mkdir(parents=True)
        args["dataset.root"] = empty
    elif case == "no_gt":
        root = make_sintel(tmp_path / "s", scenes=("alley_1",), size=SIZE, with_test=False)
        os.remove(os.path.join(root, "training", "flow", "alley_1", "frame_0002.flo"))
        args["dataset.root"] = root
    elif case == "no_root":
        del args["dataset.root"]
    out = tmp_path / "out"
    proc = run_module("pwcflow.eval", *["%s=%s" % kv for kv in args.items()], "out=%s" % out, cwd=tmp_path)
    assert needle in error_line(proc)
    assert not (out / "metrics.json").exists()


def test_scene_key_and_step():
    from pwcflow.data.datasets import Sample
    from pwcflow.eval import scene_key, step_of

    s = Sample("final/alley_1/frame_0001", "alley_1", lambda: None)
    assert scene_key(s, ("clean", "final")) == "final/alley_1"
    assert scene_key(s, ("final",)) == "alley_1"
    assert step_of("/x/pwcnet.ckpt-595000") == 595000 and step_of("/x/pwcnet.ckpt") == 0

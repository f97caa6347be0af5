"""``python -m pwcflow.export``: frozen GraphDef and SavedModel reproduce the session graph."""

import json

import numpy as np
import pytest
from conftest import error_line, run_module, session_flow

from pwcflow.deploy.formats import SUFFIX
from pwcflow.export import INPUT_NAME, OUTPUT_NAME, input_shape
from pwcflow.files import checkpoint
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.tf1 import tf

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
H, W = 128, 192


@pytest.fixture(scope="module")
def own_run(tmp_path_factory):
    """A pwcflow training run dir holding a randomly initialised sm-6-2 checkpoint (non-zero biases)."""
    run = tmp_path_factory.mktemp("run")
    p = FlowPredictor(SM, None, seed=7)
    with p.graph.as_default():
        rng = np.random.RandomState(3)
        for v in p.variables:
            if v.op.name.endswith("bias"):
                v.load(rng.uniform(-0.05, 0.05, v.get_shape().as_list()).astype(np.float32), p.sess)
    checkpoint.save_atomic(p.sess, p.saver, str(run / "checkpoints"), step=12)
    p.close()
    return run


@pytest.fixture(scope="module")
def pair():
    return np.random.RandomState(0).rand(1, 2, H, W, 3).astype(np.float32)


def _session_flow(ckpt, x):
    return session_flow(SM, ckpt, x)


def _export(tmp_path, ckpt, fmt):
    out = tmp_path / "out"
    proc = run_module("pwcflow.export", "ckpt=%s" % ckpt, "model=sm-6-2", "format=%s" % fmt, "batch=1",
                      "height=%d" % H, "width=%d" % W, "out=%s" % out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / ("pwcnet_sm-6-2_1x%dx%d%s.json" % (H, W, SUFFIX[fmt]))).read_text())
    assert info["input"] == INPUT_NAME and info["output"] == OUTPUT_NAME
    assert info["input_shape"] == [1, 2, H, W, 3]
    return info


def test_pb_round_trip(ref_dir, pair, tmp_path):
    """Frozen GraphDef: static named input, named output, same flow as the session graph."""
    info = _export(tmp_path, ref_dir / "sm", "pb")
    graph_def = tf.GraphDef()
    with open(info["path"], "rb") as fh:
        graph_def.ParseFromString(fh.read())
    assert not [n for n in graph_def.node if n.op in ("VariableV2", "VarHandleOp")]
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        x = g.get_tensor_by_name(INPUT_NAME + ":0")
        y = g.get_tensor_by_name(OUTPUT_NAME + ":0")
        assert x.get_shape().as_list() == [1, 2, H, W, 3]
        with tf.Session(graph=g) as sess:
            got = sess.run(y, {x: pair})
    assert got.shape == (1, H, W, 2)
    want = _session_flow(ref_dir / "sm", pair)
    assert np.abs(got - want).max() <= 1e-5


def test_savedmodel_round_trip_own_checkpoint(own_run, pair, tmp_path):
    """SavedModel from a pwcflow training run dir: serving signature reproduces the session graph."""
    info = _export(tmp_path, own_run, "savedmodel")
    sm = tf.saved_model
    with tf.Graph().as_default() as g, tf.Session(graph=g) as sess:
        meta = sm.loader.load(sess, [sm.tag_constants.SERVING], info["path"])
        sig = meta.signature_def[sm.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        x = g.get_tensor_by_name(sig.inputs[INPUT_NAME].name)
        y = g.get_tensor_by_name(sig.outputs[OUTPUT_NAME].name)
        got = sess.run(y, {x: pair})
    want = _session_flow(own_run, pair)
    assert np.abs(want).max() > 0
    assert np.abs(got - want).max() <= 1e-5


def test_input_shape_checks():
    assert input_shape(1, 448, 1024) == [1, 2, 448, 1024, 3]
    assert input_shape(None, None, None) == [None, 2, None, None, 3]
    from pwcflow.errors import UserError

    with pytest.raises(UserError, match="multiple of 64.*448"):
        input_shape(1, 436, 1024)
    # batch/height/width themselves are positive integers by ExportConfig (tests/test_config.py)


@pytest.mark.parametrize("case,needle", [
    ("missing", "checkpoint not found"),
    ("variant", "set model=sm-6-2"),
    ("height", "height=436"),
    ("format", "format=bogus"),
    ("nockpt", "ckpt="),
])
def test_export_bad_inputs(case, needle, ref_dir, tmp_path):
    args = {"ckpt": ref_dir / "sm", "model": "sm-6-2", "height": 128, "width": 128, "format": "pb"}
    if case == "missing":
        args["ckpt"] = tmp_path / "nope" / "pwcnet.ckpt-5"
    elif case == "variant":
        args["model"] = "lg-6-2"
    elif case == "height":
        args["height"] = 436
    elif case == "format":
        args["format"] = "bogus"
    elif case == "nockpt":
        del args["ckpt"]
    proc = run_module("pwcflow.export", *["%s=%s" % kv for kv in args.items()], "out=%s" % (tmp_path / "o"),
                      cwd=tmp_path)
    assert needle in error_line(proc)
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())

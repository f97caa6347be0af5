"""ONNX / TFLite / TF-TRT exports: each checks itself, round-trips the session, and runs without TensorFlow."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, error_line, run_module, session_flow

from pwcflow.data import flowio
from pwcflow.deploy import exported, formats
from pwcflow.errors import UserError
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.tf1 import IS_TF1, tf

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
H, W = 64, 64
STEM = "pwcnet_sm-6-2_1x%dx%d" % (H, W)


def _have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


needs_onnx = pytest.mark.skipif(not (_have("tf2onnx") and _have("onnxruntime")),
                                reason="tf2onnx/onnxruntime not installed (pip install pwcflow[export])")


def _export(tmp, ckpt, fmt, *extra):
    out = tmp / "out"
    proc = run_module("pwcflow.export", "ckpt=%s" % ckpt, "model=sm-6-2", "format=%s" % fmt, "batch=1",
                      "height=%d" % H, "width=%d" % W, "out=%s" % out, *extra, cwd=tmp)
    return proc, out


def _exported(tmp, ckpt, fmt, suffix):
    proc, out = _export(tmp, ckpt, fmt)
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads((out / (STEM + suffix + ".json")).read_text())
    assert info["path"] == str(out / (STEM + suffix)) and info["input_shape"] == [1, 2, H, W, 3]
    assert 0 <= info["max_diff_px"] <= 1e-4 and info["tolerance_px"] == 1e-4
    assert "max difference" in proc.stdout + proc.stderr
    assert sorted(os.listdir(str(out))) == sorted([STEM + suffix, STEM + suffix + ".json"])  # no temp left
    return info


def _session_flow(ckpt, x):
    return session_flow(SM, ckpt, x)


@pytest.fixture(scope="module")
def pair():
    return np.random.RandomState(1).rand(1, 2, H, W, 3).astype(np.float32)


@pytest.fixture(scope="module")
def onnx_file(ref_dir, tmp_path_factory):
    if not (_have("tf2onnx") and _have("onnxruntime")):
        pytest.skip("tf2onnx/onnxruntime not installed (pip install pwcflow[export])")
    return _exported(tmp_path_factory.mktemp("onnx"), ref_dir / "sm", "onnx", ".onnx")["path"]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    img = np.random.RandomState(0).randint(0, 255, (50, 60, 3), dtype=np.uint8)
    flowio.write_image(str(d / "a.png"), img)
    flowio.write_image(str(d / "b.png"), np.roll(img, 2, axis=1))
    flowio.write_image(str(d / "tall.png"), np.zeros((70, 60, 3), np.uint8))
    return d


def test_onnx_round_trip(onnx_file, ref_dir, pair):
    """Named static input/output; onnxruntime reproduces the session on a fresh pair."""
    model = exported.load(onnx_file)
    assert model.sess.get_inputs()[0].name == "x_tnsr" and model.sess.get_outputs()[0].name == "flow_pred"
    assert model.input_shape == [1, 2, H, W, 3]
    got, want = model.run(pair), _session_flow(ref_dir / "sm", pair)
    assert got.shape == (1, H, W, 2) and np.abs(want).max() > 0.1
    assert np.abs(got - want).max() <= 1e-4


def _predict_without_tf(*overrides):
    """``pwcflow.predict`` in a child where ``import tensorflow`` fails; prints whether TF got loaded."""
    code = ("import sys; sys.modules['tensorflow'] = None; sys.argv = ['predict'] + sys.argv[1:]\n"
            "from pwcflow import predict\n"
            "try:\n    predict.main()\n"
            "finally:\n    print('tf loaded:', any(m.startswith('tensorflow.') for m in sys.modules))\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", code] + list(overrides), cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=300)


def test_predict_onnx_equals_ckpt_without_tensorflow(onnx_file, ref_dir, frames, tmp_path):
    """predict model_file=X.onnx runs with TensorFlow unimportable and matches predict ckpt= (pad 50x60 -> 64)."""
    imgs = ["img1=%s" % (frames / "a.png"), "img2=%s" % (frames / "b.png")]
    proc = _predict_without_tf("model_file=%s" % onnx_file, "out=%s" % (tmp_path / "onnx.flo"), *imgs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tf loaded: False" in proc.stdout
    proc = run_module("pwcflow.predict", "ckpt=%s" % (ref_dir / "sm"), "model=sm-6-2",
                      "out=%s" % (tmp_path / "ckpt.flo"), *imgs, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, want = flowio.read_flo(str(tmp_path / "onnx.flo")), flowio.read_flo(str(tmp_path / "ckpt.flo"))
    assert got.shape == (50, 60, 2) and np.abs(want).max() > 0.1
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("case,needle", [("truncated", "cannot load model file"), ("tall", "height 70 is larger"),
                                         ("suffix", "model_file=")])
def test_predict_onnx_bad_inputs(case, needle, onnx_file, frames, tmp_path):
    model, img = onnx_file, frames / "a.png"
    if case == "truncated":
        model = tmp_path / "cut.onnx"
        model.write_bytes(open(onnx_file, "rb").read()[:5000])
    elif case == "tall":
        img = frames / "tall.png"
    elif case == "suffix":
        model = tmp_path / "m.pb"
        model.write_bytes(b"x")
    proc = _predict_without_tf("model_file=%s" % model, "img1=%s" % img, "img2=%s" % img,
                               "out=%s" % (tmp_path / "o.flo"))
    assert needle in error_line(proc)
    assert not (tmp_path / "o.flo").exists()


@needs_onnx
def test_failed_check_leaves_nothing(ref_dir, tmp_path):
    """An export over tolerance fails with one line and writes nothing (no file, JSON or temp folder)."""
    proc, out = _export(tmp_path, ref_dir / "sm", "onnx", "tolerance=1e-12")
    assert "export check failed" in error_line(proc)
    assert not out.exists() or not os.listdir(str(out))


@pytest.mark.skipif(IS_TF1, reason="TF 1.15's TFLite lacks BatchMatMul/IsFinite kernels: format=tflite needs TF 2.x")
def test_tflite_round_trip(ref_dir, pair, tmp_path):
    info = _exported(tmp_path, ref_dir / "sm", "tflite", ".tflite")
    model = exported.load(info["path"])
    got, want = model.run(pair), _session_flow(ref_dir / "sm", pair)
    assert np.abs(got - want).max() <= 1e-4
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(open(info["path"], "rb").read()[:1000])
    with pytest.raises(UserError, match="cannot load model file"):
        exported.load(str(cut))


@pytest.mark.skipif(not IS_TF1, reason="TF 2.x exports tflite (test_tflite_round_trip)")
def test_tflite_on_tf1_says_why(ref_dir, tmp_path):
    proc, out = _export(tmp_path, ref_dir / "sm", "tflite")
    assert "needs TensorFlow 2.x" in error_line(proc)
    assert not out.exists() or not os.listdir(str(out))


@pytest.mark.skipif(formats.tensorrt_enabled() and bool(tf.config.experimental.list_physical_devices("GPU")),
                    reason="TensorRT and a GPU are present")
def test_tftrt_without_tensorrt_or_gpu_refuses_before_the_checkpoint(tmp_path):
    # a checkpoint that does not exist: the TensorRT/GPU refusal must come first, before it is looked for
    proc, out = _export(tmp_path, tmp_path / "no-such-ckpt", "tftrt")
    line = error_line(proc)
    want = "needs an NVIDIA GPU" if formats.tensorrt_enabled() else "needs TensorFlow built with TensorRT"
    assert want in line and "no-such-ckpt" not in line, line
    assert not out.exists()

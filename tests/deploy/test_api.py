"""``pwcflow.load``: one object for a checkpoint (TensorFlow) and an exported .onnx (no TensorFlow), giving the
CLI's flows; the flow utilities and ``import pwcflow`` without TensorFlow; the README's example, run."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, random_checkpoint, run_module

import pwcflow
from pwcflow.data import flowio
from pwcflow.errors import UserError

H, W = 50, 70


def _have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return str(random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=3, step=5))


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    rng = np.random.RandomState(0)
    img = (rng.rand(H, W, 3) * 255).astype(np.uint8)
    for name, pic in (("a", img), ("b", np.roll(img, 3, axis=1)), ("c", np.roll(img, 5, axis=0))):
        flowio.write_image(str(d / ("%s.png" % name)), pic)
    return d


def _cli_flow(ckpt, frames, tmp_path, *extra):
    out = tmp_path / "cli.flo"
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "img1=%s" % (frames / "a.png"),
                      "img2=%s" % (frames / "b.png"), "out=%s" % out, *extra, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return flowio.read_flo(str(out))


def test_import_pwcflow_and_flow_utilities_pull_no_tensorflow():
    code = ("import sys, pwcflow\n"
            "from pwcflow.data import flowio, viz\n"
            "from pwcflow.inference import consistency, scale\n"
            "from pwcflow.deploy import api, exported\n"
            "print('tensorflow' in sys.modules, callable(pwcflow.load))\n")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["False", "True"]


def test_checkpoint_gives_the_cli_flow_batch_and_sequence(ckpt, frames, tmp_path):
    a, b, c = (flowio.read_image(str(frames / ("%s.png" % n))) for n in "abc")
    with pwcflow.load(ckpt, model="sm-6-2") as m:
        flow = m(a, b)
        as_float = m(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0)
        both = m.batch([(a, b), (b, c)])
        seq = list(m.sequence([a, b, c]))
        with pytest.raises(UserError, match="pair 1: frames of"):
            m.batch([(a, b), (a[:40], b[:40])])
    assert flow.shape == (H, W, 2) and flow.dtype == np.float32 and np.abs(flow).max() > 1e-3
    assert np.abs(flow - _cli_flow(ckpt, frames, tmp_path)).max() <= 1e-4
    assert np.abs(as_float - flow).max() <= 1e-5
    assert both.shape == (2, H, W, 2) and np.abs(both[0] - flow).max() <= 1e-4
    assert len(seq) == 2 and np.abs(seq[0] - flow).max() <= 1e-4 and np.abs(seq[1] - both[1]).max() <= 1e-4
    with pytest.raises(UserError, match="closed"):
        m(a, b)


def test_bad_arguments_one_line(ckpt):
    with pytest.raises(UserError, match="bad setting model=xl-9: one of lg-6-2, sm-6-2"):
        pwcflow.load(ckpt, model="xl-9")
    with pytest.raises(UserError, match="max_side"):
        pwcflow.load(ckpt, model="sm-6-2", max_side=10)
    with pytest.raises(UserError, match="checkpoint not found"):
        pwcflow.load(ckpt + "-nope", model="sm-6-2")


@pytest.mark.slow
@pytest.mark.skipif(not (_have("tf2onnx") and _have("onnxruntime")), reason="pip install pwcflow[export]")
def test_onnx_gives_the_checkpoint_flow_without_tensorflow(ckpt, frames, tmp_path):
    out = tmp_path / "export"
    proc = run_module("pwcflow.export", "ckpt=%s" % ckpt, "model=sm-6-2", "format=onnx", "batch=1", "height=64",
                      "width=128", "out=%s" % out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    onnx = [p for p in os.listdir(str(out)) if p.endswith(".onnx")][0]
    code = ("import sys; sys.modules['tensorflow'] = None\n"
            "import numpy as np, pwcflow\nfrom pwcflow.data import flowio\n"
            "a, b, c = (flowio.read_image(sys.argv[2] + '/%s.png' % n) for n in 'abc')\n"
            "with pwcflow.load(sys.argv[1]) as m:\n"
            "    flowio.write_flo(sys.argv[3], m(a, b)); flows = m.batch([(a, b), (b, c)])\n"
            "print(flows.shape, any(k.startswith('tensorflow.') for k in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(out / onnx), str(frames), str(tmp_path / "onnx.flo")],
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["(2,", "%d," % H, "%d," % W, "2)", "False"]  # batch of 2 on a batch-1 export
    got = flowio.read_flo(str(tmp_path / "onnx.flo"))
    assert np.abs(got - _cli_flow(ckpt, frames, tmp_path)).max() <= 1e-4


def test_readme_example_runs(ckpt, frames, tmp_path):
    """The README's "Use it from Python" block, on a random checkpoint instead of the published one."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Use it from Python\n\n```python\n(.*?)```", text, re.S).group(1)
    named = 'pwcflow.load("pwcnet-lg-6-2-chairsthingsmix")'
    assert named in block
    code = block.replace(named, "pwcflow.load(%r, model='sm-6-2')" % ckpt)
    for name, src in (("frame1.png", "a.png"), ("frame2.png", "b.png")):
        (tmp_path / name).write_bytes((frames / src).read_bytes())
    proc = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("(%d, %d, 2) (2, %d, %d, 2) 2 " % (H, W, H, W))
    assert flowio.read_flo(str(tmp_path / "flow.flo")).shape == (H, W, 2) and (tmp_path / "flow.png").exists()

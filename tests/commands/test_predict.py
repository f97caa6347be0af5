"""``python -m pwcflow.predict`` as a user runs it, good and bad inputs."""

import os

import numpy as np
import pytest
from conftest import error_line, run_module

from pwcflow.data import flowio
from pwcflow.device import precision
from pwcflow.model import tuning
from pwcflow.tf1 import IS_TF1


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    d = tmp_path_factory.mktemp("frames")
    rng = np.random.RandomState(0)
    img = rng.randint(0, 255, (70, 90, 3), dtype=np.uint8)
    flowio.write_image(str(d / "a.png"), img)
    flowio.write_image(str(d / "b.png"), np.roll(img, 1, axis=1))
    flowio.write_image(str(d / "big.png"), rng.randint(0, 255, (80, 90, 3), dtype=np.uint8))
    (d / "junk.png").write_bytes(b"not a png at all")
    return d


def test_predict_writes_flo_and_picture(frames, ref_dir, tmp_path):
    out, pic = tmp_path / "f.flo", tmp_path / "f.png"
    proc = run_module("pwcflow.predict", "ckpt=%s" % (ref_dir / "sm"), "model=sm-6-2", "img1=%s" % (frames / "a.png"),
                      "img2=%s" % (frames / "b.png"), "out=%s" % out, "viz=%s" % pic, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    flow = flowio.read_flo(str(out))
    assert flow.shape == (70, 90, 2) and np.isfinite(flow).all()
    assert flowio.read_image(str(pic)).shape == (70, 90, 3)


@pytest.mark.parametrize("case,needle", [
    ("missing", "file not found"),
    ("junk", "cannot read image"),
    ("size", "differ in size"),
    ("ckpt", "checkpoint not found"),
    ("variant", "set model=sm-6-2"),
])
def test_predict_bad_inputs(case, needle, frames, ref_dir, tmp_path):
    args = {"img1": frames / "a.png", "img2": frames / "b.png", "ckpt": ref_dir / "sm", "model": "sm-6-2"}
    if case == "missing":
        args["img2"] = frames / "nope.png"
    elif case == "junk":
        args["img1"] = frames / "junk.png"
    elif case == "size":
        args["img2"] = frames / "big.png"
    elif case == "ckpt":
        args["ckpt"] = tmp_path / "no" / "pwcnet.ckpt-1"
    elif case == "variant":
        args["model"] = "lg-6-2"
    out = tmp_path / "out.flo"
    proc = run_module("pwcflow.predict", *["%s=%s" % kv for kv in args.items()], "out=%s" % out, cwd=tmp_path)
    assert needle in error_line(proc)
    assert not out.exists()
    assert not [f for f in os.listdir(str(tmp_path)) if f.startswith(".tmp")]


@pytest.mark.skipif(not (precision.bf16_unit() and not IS_TF1 and tuning.onednn_enabled()),
                    reason="needs a CPU with bfloat16 units and TF 2.x with oneDNN")
def test_predict_in_bf16_from_the_command_line(frames, ref_dir, tmp_path):
    """``device.precision=bf16`` (default keep-list, or ``device.bf16_fp32_layers=[]``) as a user runs it: a
    flow close to fp32's but not equal (the graph ran in bfloat16); exports are not involved."""
    flows = {}
    for name, extra in (("fp32", []), ("bf16", ["device.precision=bf16"]),
                        ("bf16-all", ["device.precision=bf16", "device.bf16_fp32_layers=[]"])):
        out = tmp_path / (name + ".flo")
        proc = run_module("pwcflow.predict", "ckpt=%s" % (ref_dir / "sm"), "model=sm-6-2",
                          "img1=%s" % (frames / "a.png"), "img2=%s" % (frames / "b.png"), "out=%s" % out, *extra,
                          cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        flows[name] = flowio.read_flo(str(out))
    for name in ("bf16", "bf16-all"):
        diff = np.abs(flows[name] - flows["fp32"]).max()
        assert 0 < diff < 0.5, (name, diff)
    assert not np.array_equal(flows["bf16"], flows["bf16-all"])  # the keep-list reached the graph

"""``format=onnx int8=true``: static QDQ int8 ONNX, kept only within its EPE tolerance of the session."""

import json
import os

import numpy as np
import pytest
from conftest import error_line, run_module, session_flow

from pwcflow.deploy import exported, quantize
from pwcflow.model.pwcnet import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
H, W = 64, 64
STEM = "pwcnet_sm-6-2_1x%dx%d_int8.onnx" % (H, W)


def _have(module: str) -> bool:
    try:
        __import__(module)
        return True
    except ImportError:
        return False


HAVE_ONNX = _have("tf2onnx") and _have("onnxruntime") and _have("onnx")
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="tf2onnx/onnxruntime not installed (pip install pwcflow[export])")


def _export(tmp, ckpt, *extra):
    out = tmp / "out"
    proc = run_module("pwcflow.export", "ckpt=%s" % ckpt, "model=sm-6-2", "format=onnx", "int8=true", "batch=1",
                      "height=%d" % H, "width=%d" % W, "out=%s" % out, *extra, cwd=tmp)
    return proc, out


@pytest.fixture(scope="module")
def int8_export(ref_dir, tmp_path_factory):
    if not HAVE_ONNX:
        pytest.skip("tf2onnx/onnxruntime not installed (pip install pwcflow[export])")
    proc, out = _export(tmp_path_factory.mktemp("int8"), ref_dir / "sm")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@needs_onnx
@pytest.mark.slow
def test_int8_export_is_quantized_and_within_its_epe_tolerance(int8_export, ref_dir):
    import onnx

    assert sorted(os.listdir(str(int8_export))) == [STEM, STEM + ".json"]  # no temp or float file left
    info = json.loads((int8_export / (STEM + ".json")).read_text())
    assert info["int8"] is True and info["tolerance_epe_px"] == quantize.INT8_EPE_TOLERANCE
    assert abs(info["epe_change_px"]) <= 0.05 and info["epe_session_px"] > 0
    model = onnx.load(str(int8_export / STEM))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") > 10 and ops.count("DequantizeLinear") > 10
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    by_name = {n.name: n for n in model.graph.node}
    kept = info["int8_float_nodes"]  # the flow heads and the last context layer: float weights, float input
    assert len(kept) == 6 and all(produced.get(by_name[k].input[1]) != "DequantizeLinear" for k in kept)
    quantized = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in kept]
    assert len(quantized) == info["int8_quantized_nodes"] > 60
    assert all(produced.get(n.input[1]) == "DequantizeLinear" for n in quantized)
    concats = [n for n in model.graph.node if n.op_type == "Concat"
               and all(produced.get(i) == "DequantizeLinear" for i in n.input)]  # concatenated in uint8
    assert len(concats) == info["int8_quantized_concats"] > 0
    # the file alone reproduces its recorded EPE on the generated check pairs
    run = exported.load(str(int8_export / STEM), probe=False).run
    pairs = quantize.generated_pairs([1, 2, H, W, 3], "val", quantize.CHECK_PAIRS)
    got = np.mean([quantize.epe(run(x), gt) for x, gt in pairs])
    want = np.mean([quantize.epe(session_flow(SM, ref_dir / "sm", x), gt) for x, gt in pairs])
    assert abs(got - info["epe_int8_px"]) < 1e-4 and abs(want - info["epe_session_px"]) < 1e-4


@needs_onnx
@pytest.mark.slow
def test_int8_over_its_tolerance_leaves_nothing(ref_dir, tmp_path):
    proc, out = _export(tmp_path, ref_dir / "sm", "tolerance=0")
    assert "int8=true export check failed: EPE change" in error_line(proc)
    assert not out.exists() or os.listdir(str(out)) == []


def test_int8_is_for_onnx_only(ref_dir, tmp_path):
    out = tmp_path / "out"
    proc = run_module("pwcflow.export", "ckpt=%s" % (ref_dir / "sm"), "model=sm-6-2", "format=pb", "int8=true",
                      "out=%s" % out, cwd=tmp_path)
    assert error_line(proc) == "error: bad setting int8=true: int8 is for format=onnx (static QDQ; this is format=pb)"
    assert not out.exists()


@pytest.mark.skipif(not _have("onnx"), reason="onnx not installed (pip install pwcflow[export])")
def test_repair_drops_repeated_nodes_and_renames():
    from onnx import helper

    dq = helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"], name="w_DequantizeLinear")
    other = helper.make_node("Relu", ["x"], ["y"], name="w_DequantizeLinear")
    graph = helper.make_graph([dq, helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"],
                                                    name="w_DequantizeLinear"), other], "g", [], [])
    model = helper.make_model(graph)
    assert quantize.repair(model) == 2
    assert [n.name for n in model.graph.node] == ["w_DequantizeLinear", "w_DequantizeLinear_2"]
    assert quantize.repair(model) == 0

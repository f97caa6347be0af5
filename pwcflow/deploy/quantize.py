"""int8 ONNX (``python -m pwcflow.export format=onnx int8=true``): static QDQ quantization with onnxruntime.

What is quantized: the convolutions of the feature pyramid, the flow estimators' dense/plain blocks and the
context network, and the concatenations between them (``QUANTIZED_OPS``: with the dense blocks' concatenations
in uint8, lg-6-2 loses a dequantize/quantize pair around each; on the AMX Xeon 1.94x the float ONNX's speed
against 1.70x with the convolutions alone, same EPE change: benchmarks/RESULTS.md), int8 weights per output
channel, uint8 activations (the U8S8 pair onnxruntime's x86 kernels, VNNI/AMX-INT8, run fastest), ranges
calibrated (min/max) on generated moving-texture pairs (``data/synthetic.py``, train split) at the export's
input size. What stays float (``keep_float``): the cost volume (its
MatMul/BatchMatMul and normalisation are not in ``QUANTIZED_OPS``; its output enters the next convolution's
quantized input as before), every convolution with two output channels (the flow heads and the context
network's last layer: the flow itself), the upsampling deconvolutions, the warp and the output.
``KEEP_FLOAT_OUT_CHANNELS`` and ``nodes_to_exclude`` override it.

The export is checked by EPE on generated pairs (val split) instead of the float exports' max px difference:
the mean end-point error against the pairs' true flow of the int8 file (onnxruntime) minus that of the
checkpoint's session, at most ``tolerance`` (``INT8_EPE_TOLERANCE`` px unless set).
"""

import inspect
import logging
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from pwcflow.errors import UserError

log = logging.getLogger("pwcflow.export")

QUANTIZED_OPS = ("Conv", "Concat")
KEEP_FLOAT_OUT_CHANNELS = (2,)  # convolutions producing a flow (flow heads, last context layer) stay float
INT8_EPE_TOLERANCE = 0.05  # px: EPE change on the generated check pairs
CALIBRATION_PAIRS = 8
CHECK_PAIRS = 4


def generated_pairs(shape: Sequence[Optional[int]], split: str, count: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """``count`` generated pairs as (x_tnsr [N, 2, H, W, 3] float32, true flow [N, H, W, 2]) at ``shape``'s size
    (the pair repeated N times; dynamic dims: batch 1, 128 px)."""
    from pwcflow.data import synthetic
    from pwcflow.deploy import exported

    n, h, w = shape[0] or 1, shape[2] or 128, shape[3] or 128
    out = []
    for i in range(count):
        img1, img2, flow = synthetic.make_pair(synthetic.SyntheticSpec(size=(h, w)), split, i)
        out.append((np.repeat(exported.to_input(img1, img2)[None], n, 0),
                    np.repeat(flow[None].astype(np.float32), n, 0)))
    return out


def float_nodes(model, out_channels: Iterable[int] = KEEP_FLOAT_OUT_CHANNELS) -> List[str]:
    """Names of the convolutions of ``model`` (an ``onnx.ModelProto``) that stay float: those whose weight has
    ``out_channels`` output channels."""
    dims = {init.name: list(init.dims) for init in model.graph.initializer}
    keep = set(out_channels)
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and len(n.input) > 1 and dims.get(n.input[1], [0])[0] in keep]


def repair(model) -> int:
    """Fix in place what onnxruntime 1.10's ``quantize_static`` writes for a weight shared by several
    convolutions (the feature pyramid runs on both frames): one DequantizeLinear per user, all with the same
    output and node name. Repeats of an identical node are dropped, then repeated node names renamed
    (``name_2``, ...; edges use tensor names). Returns how many nodes were dropped or renamed."""
    seen_nodes, keep = set(), []
    for node in model.graph.node:
        key = node.SerializeToString()
        if key not in seen_nodes:
            seen_nodes.add(key)
            keep.append(node)
    dropped = len(model.graph.node) - len(keep)
    if dropped:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    seen, renamed = set(), 0
    for node in model.graph.node:
        name, k = node.name, 1
        while node.name in seen:
            k += 1
            node.name = "%s_%d" % (name, k)
        renamed += node.name != name
        seen.add(node.name)
    return dropped + renamed


class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of inputs."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray]):
        self._it = iter([{name: x} for x in inputs])

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        return next(self._it, None)


def quantize_file(fp32_path: str, path: str, calibration: Sequence[np.ndarray],
                  nodes_to_exclude: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """Static QDQ int8 ``path`` from the float ONNX ``fp32_path``; returns what was kept float."""
    try:
        import onnx
        from onnxruntime import __version__ as ort_version
        from onnxruntime import quantization as q
    except ImportError as exc:
        raise UserError("int8=true needs onnxruntime with its quantization tools: pip install pwcflow[export] (%s)"
                        % exc)
    model = onnx.load(fp32_path)
    keep = float_nodes(model) if nodes_to_exclude is None else list(nodes_to_exclude)
    opts = dict(quant_format=q.QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8, nodes_to_exclude=keep,
                calibrate_method=q.CalibrationMethod.MinMax, extra_options={})
    if "optimize_model" in inspect.signature(q.quantize_static).parameters:  # onnxruntime < 1.16
        opts["optimize_model"] = False
    q.quantize_static(fp32_path, path, _Reader(model.graph.input[0].name, calibration), **opts)
    out = onnx.load(path)
    if repair(out):  # onnxruntime 1.10's quantizer repeats nodes its own loader then refuses
        onnx.save(out, path)
    quantized = sum(n.op_type == "Conv" for n in model.graph.node) - len(keep)
    produced = {o: n.op_type for n in out.graph.node for o in n.output}
    concats = sum(n.op_type == "Concat" and all(produced.get(i) == "DequantizeLinear" for i in n.input)
                  for n in out.graph.node)
    return {"int8_runtime": "onnxruntime %s" % ort_version, "int8_quantized_nodes": quantized,
            "int8_quantized_concats": concats, "int8_float_nodes": keep,
            "int8_calibration": "%d generated pairs (train split)" % len(calibration)}


def write_int8(write_float: Callable[[str], object], path: str, shape: Sequence[Optional[int]]) -> Dict[str, object]:
    """``write_float(tmp)`` (the float ONNX), then its int8 version at ``path``; the float file is removed."""
    fp32_path = path + ".fp32.onnx"
    write_float(fp32_path)
    try:
        calibration = [x for x, _ in generated_pairs(shape, "train", CALIBRATION_PAIRS)]
        return quantize_file(fp32_path, path, calibration)
    finally:
        if os.path.exists(fp32_path):
            os.remove(fp32_path)


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean end-point error (px)."""
    return float(np.sqrt(((flow - gt) ** 2).sum(-1)).mean())


def epe_check(run_int8: Callable[[np.ndarray], np.ndarray], run_session: Callable[[np.ndarray], np.ndarray],
              shape: Sequence[Optional[int]], tolerance: float) -> Dict[str, object]:
    """EPE of the int8 model and of the checkpoint's session on ``CHECK_PAIRS`` generated val pairs; a one-line
    ``UserError`` where the change exceeds ``tolerance`` px."""
    pairs = generated_pairs(shape, "val", CHECK_PAIRS)
    got = [(run_int8(x), run_session(x), gt) for x, gt in pairs]
    e8, e32 = (float(np.mean([epe(f[k], f[2]) for f in got])) for k in (0, 1))
    record = {"epe_int8_px": e8, "epe_session_px": e32, "epe_change_px": e8 - e32, "tolerance_epe_px": tolerance,
              "max_diff_px": float(max(np.abs(a - b).max() for a, b, _ in got)),
              "check_input": "%d generated val pairs, shape %s" % (len(pairs), list(pairs[0][0].shape))}
    log.info("check: int8 onnx vs checkpoint session on %d generated pairs: EPE %.4f vs %.4f px (change %+.4f, "
             "tolerance %g), max difference %.3g px", len(pairs), e8, e32, e8 - e32, tolerance, record["max_diff_px"])
    if not abs(e8 - e32) <= tolerance:
        raise UserError("format=onnx int8=true export check failed: EPE change %+.3g px on %d generated pairs "
                        "exceeds tolerance=%g; nothing written" % (e8 - e32, len(pairs), tolerance))
    return record


def checked_onnx(path: str, session: Callable[[np.ndarray], np.ndarray], shape: Sequence[Optional[int]],
                 tolerance: float) -> Dict[str, object]:
    """``epe_check`` of the int8 file at ``path`` on onnxruntime against the checkpoint's ``session``."""
    from pwcflow.deploy import exported

    model = exported.load(path, probe=False)
    return dict(epe_check(model.run, session, shape, tolerance), check_runtime=model.runtime)

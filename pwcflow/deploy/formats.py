"""Deployment formats beyond the frozen pb, and the check every export passes before it is kept.

- ``onnx``: tf2onnx from the frozen GraphDef; input ``x_tnsr``, output ``flow_pred`` as in the pb
  (``int8=true``: static QDQ int8, ``pwcflow.deploy.quantize``, checked by EPE change on generated pairs).
- ``tflite``: TensorFlow Lite float32 (``fp16=true``: float16 weights, float32 compute).
- ``tftrt``: a TF-TRT frozen GraphDef (TensorRT engines in ``TRTEngineOp`` nodes); needs an NVIDIA GPU and a
  TensorFlow built with TensorRT (``check_tftrt``). Unverified: it has not run on a GPU yet.

``write_checked`` writes into a temporary sibling, runs it with its own runtime on a generated pair,
compares with the checkpoint's session output and renames it into place only within tolerance (over an
earlier export of the same name, a SavedModel folder included). ``sidecar(path)`` names its JSON.
"""

import logging
import os
import shutil
from typing import Callable, Dict, Optional, Tuple

import numpy as np

from pwcflow.deploy import exported
from pwcflow.errors import UserError
from pwcflow.files import atomic
from pwcflow.tf1 import IS_TF1, TF_VERSION, tf

log = logging.getLogger("pwcflow.export")

INPUT_NAME = "x_tnsr"
OUTPUT_NAME = "flow_pred"
SUFFIX = {"pb": ".pb", "savedmodel": "_savedmodel", "onnx": ".onnx", "tflite": ".tflite", "tftrt": "_tftrt.pb"}
DEFAULT_OPSET = 13
TOLERANCE = 1e-4  # px: float32 exports differ from the session by float rounding only
FP16_TOLERANCE = 0.05  # px: float16 weights (tflite fp16=true)


def sidecar(path: str) -> str:
    """The JSON beside an export: ``<file>.json`` (``x.pb.json``, ``x_savedmodel.json``, ``x.onnx.json``, ...), so
    the formats' records never share a name."""
    return path + ".json"


def write_onnx(graph_def: tf.GraphDef, path: str, opset: int = DEFAULT_OPSET) -> None:
    """ONNX via tf2onnx, with the graph's input/output renamed to ``x_tnsr`` / ``flow_pred`` (no ``:0``)."""
    try:
        import tf2onnx
    except ImportError as exc:
        raise UserError("format=onnx needs tf2onnx and onnxruntime: pip install pwcflow[export] (%s)" % exc)
    proto, _ = tf2onnx.convert.from_graph_def(graph_def, input_names=[INPUT_NAME + ":0"],
                                              output_names=[OUTPUT_NAME + ":0"], opset=int(opset))
    graph = proto.graph
    names = {INPUT_NAME + ":0": INPUT_NAME, OUTPUT_NAME + ":0": OUTPUT_NAME}
    for value in list(graph.input) + list(graph.output):
        value.name = names.get(value.name, value.name)
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = names.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = names.get(name, name)
    with open(path, "wb") as fh:
        fh.write(proto.SerializeToString())


def write_onnx_int8(graph_def: tf.GraphDef, path: str, shape: list, opset: int = DEFAULT_OPSET) -> Dict[str, object]:
    """int8 ONNX: ``write_onnx`` then static QDQ quantization (``quantize.write_int8``); returns what it kept."""
    from pwcflow.deploy import quantize

    return quantize.write_int8(lambda tmp: write_onnx(graph_def, tmp, opset), path, shape)


def write_tflite(graph_def: tf.GraphDef, path: str, fp16: bool = False) -> None:
    """TensorFlow Lite flatbuffer from the frozen GraphDef (TF 2.x: TF 1.15's TFLite lacks BatchMatMul/IsFinite)."""
    if IS_TF1:
        raise UserError("format=tflite needs TensorFlow 2.x: TF %s's TFLite has no BatchMatMul/IsFinite kernels "
                        "(use format=onnx or format=pb)" % TF_VERSION)
    pb = path + ".frozen.pb"
    with open(pb, "wb") as fh:
        fh.write(graph_def.SerializeToString())
    try:
        conv = tf.lite.TFLiteConverter.from_frozen_graph(pb, [INPUT_NAME], [OUTPUT_NAME])
        if fp16:
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.target_spec.supported_types = [tf.float16]
        data = conv.convert()
    finally:
        os.remove(pb)
    with open(path, "wb") as fh:
        fh.write(data)


def tensorrt_enabled() -> bool:
    """Whether this TensorFlow was built with TensorRT (TF-TRT): TensorFlow's own ``is_tensorrt_enabled``
    (``tensorflow/python/compiler/tensorrt/trt_convert.py`` calls it before converting)."""
    try:
        if IS_TF1:
            from tensorflow.compiler.tf2tensorrt import wrap_py_utils as utils
        else:
            from tensorflow.compiler.tf2tensorrt import _pywrap_py_utils as utils
        return bool(utils.is_tensorrt_enabled())
    except (ImportError, AttributeError):
        return False


def check_tftrt() -> None:
    """One line unless this TensorFlow has TensorRT and sees a GPU; ``export`` calls it before any checkpoint work.

    TensorFlow's CUDA pip wheels ship without TensorRT since 2.18 (tensorflow/tensorflow#87911); 2.17 and
    earlier with TensorRT's libraries, or NVIDIA's NGC TensorFlow containers, have it.
    """
    if not tensorrt_enabled():
        raise UserError("format=tftrt needs TensorFlow built with TensorRT: TensorFlow %s is not (pip wheels since "
                        "2.18 are not; use TensorFlow <= 2.17 with TensorRT or an NVIDIA NGC TensorFlow container)"
                        % TF_VERSION)
    if not tf.config.experimental.list_physical_devices("GPU"):
        raise UserError("format=tftrt needs an NVIDIA GPU: TensorFlow %s sees no GPU here" % TF_VERSION)


def write_tftrt(graph_def: tf.GraphDef, path: str, batch: Optional[int] = 1) -> None:
    """TF-TRT GraphDef (FP32 engines built at conversion); one line without a GPU or TensorRT."""
    check_tftrt()
    from tensorflow.python.compiler.tensorrt import trt_convert as trt

    key = "nodes_blacklist" if IS_TF1 else "nodes_denylist"
    conv = trt.TrtGraphConverter(input_graph_def=graph_def, max_batch_size=int(batch or 1), precision_mode="FP32",
                                 is_dynamic_op=batch is None, **{key: [OUTPUT_NAME]})
    with open(path, "wb") as fh:
        fh.write(conv.convert().SerializeToString())


def run_graph_def(path: str, x: np.ndarray) -> np.ndarray:
    """flow_pred of a frozen GraphDef file in a fresh TF session."""
    graph_def = tf.GraphDef()
    with open(path, "rb") as fh:
        graph_def.ParseFromString(fh.read())
    with tf.Graph().as_default() as g:
        tf.import_graph_def(graph_def, name="")
        with tf.Session(graph=g) as sess:
            return sess.run(OUTPUT_NAME + ":0", {INPUT_NAME + ":0": x})


def run_savedmodel(path: str, x: np.ndarray) -> np.ndarray:
    """flow_pred of a TF1 SavedModel's serving signature in a fresh TF session."""
    sm = tf.saved_model
    with tf.Graph().as_default() as g, tf.Session(graph=g) as sess:
        meta = sm.loader.load(sess, [sm.tag_constants.SERVING], path)
        sig = meta.signature_def[sm.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
        return sess.run(sig.outputs[OUTPUT_NAME].name, {sig.inputs[INPUT_NAME].name: x})


def run_exported(fmt: str, path: str, x: np.ndarray) -> Tuple[np.ndarray, str]:
    """The exported file's output on ``x`` with its own runtime, and that runtime's name."""
    if fmt in ("onnx", "tflite"):
        model = exported.load(path, probe=False)
        return model.run(x), model.runtime
    if fmt == "savedmodel":
        return run_savedmodel(path, x), "tensorflow %s" % TF_VERSION
    return run_graph_def(path, x), "tensorflow %s" % TF_VERSION


def write_checked(fmt: str, write: Callable[[str], object], final: str, x: np.ndarray, want: np.ndarray,
                  tolerance: float, check: Optional[Callable[[str], Dict[str, object]]] = None) -> Dict[str, object]:
    """``write(tmp)`` into a temporary sibling of ``final``, check it against ``want``, then rename it to ``final``.

    Returns the check's record (max px difference, tolerance, runtime; a dict ``write`` returns is added).
    ``check(tmp)``, where given, replaces the max-difference check (int8: EPE change) and raises ``UserError``
    over its tolerance. Any failure leaves nothing behind.
    """
    folder = os.path.dirname(os.path.abspath(final))
    os.makedirs(folder, exist_ok=True)
    tmp_dir = atomic.temp_dir(folder)
    tmp = os.path.join(tmp_dir, os.path.basename(final))
    try:
        try:
            written = write(tmp)
            if check is not None:
                record = dict(check(tmp), **(written if isinstance(written, dict) else {}))
            else:
                got, runtime = run_exported(fmt, tmp, x)
        except (UserError, KeyboardInterrupt):
            raise
        except Exception as exc:  # converters and runtimes raise many types; the user gets one line
            why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError("format=%s export failed: %s: %s" % (fmt, type(exc).__name__, why[:300]))
        if check is not None:
            os.replace(tmp, final)
            return record
        diff = float(np.abs(got - want).max())
        record = {"max_diff_px": diff, "tolerance_px": float(tolerance), "check_runtime": runtime,
                  "check_input": "synthetic val pair 0, shape %s" % list(x.shape)}
        log.info("check: %s on %s vs checkpoint session: max difference %.3g px (tolerance %g)",
                 fmt, runtime, diff, tolerance)
        if not diff <= tolerance:
            raise UserError("format=%s export check failed: max difference %.3g px from the checkpoint's session "
                            "exceeds tolerance=%g; nothing written" % (fmt, diff, tolerance))
        atomic.replace_path(tmp, final)  # the same export again replaces it (a SavedModel folder too)
        return record
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)

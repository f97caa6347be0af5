"""``python -m pwcflow.export ckpt=PATH format=pb|savedmodel|onnx|tflite|tftrt height=448 width=1024 batch=1``.

Writes a deployable PWC-Net: a frozen GraphDef (``format=pb``; what Ascend's ATC converter and
TF-serving-less C++/Java runtimes take) or a TF1-style SavedModel with a ``serving_default``
signature (``format=savedmodel``). Both have

- input ``x_tnsr``: float32 [batch, 2, height, width, 3], frame 1 then frame 2, RGB in [0, 1]
  (uint8 / 255, no mean subtraction);
- output ``flow_pred``: float32 [batch, height, width, 2], (u, v) in pixels, at the *padded*
  input size.

Fixed input size: PWC-Net needs height and width that are multiples of 64. Choose at export:

- ``height``/``width`` = your frames' size rounded *up* to a multiple of 64 (Sintel 436x1024 ->
  448x1024, the seed's Ascend 310 model [1, 2, 448, 1024, 3]); at run time zero-pad frames at the
  bottom/right and crop the flow back to the top-left HxW. This is tfoptflow's own test-time
  processing and gives the same numbers as ``pwcflow.eval``.
- or any multiple of 64 and *resize* frames to it, then rescale the flow to the original size
  (u *= W/width, v *= H/height): cheaper for large frames, less accurate.
- ``batch`` fixes the batch size (Ascend wants static shapes). ``batch``, ``height`` or ``width``
  = null leaves that dimension dynamic (fine for TF/GPU serving; ATC then needs ``--input_shape``).

``onnx``, ``tflite`` and ``tftrt`` are in ``pwcflow.deploy.formats`` (``format=onnx int8=true``: static QDQ int8,
``pwcflow.deploy.quantize``, checked by its EPE change on generated pairs). Every export is checked before it is
kept: its own runtime runs it on a generated pair and the max px difference from the checkpoint's session
goes into the JSON and the log; over ``tolerance`` nothing is written.

If a converter rejects an op, ``model.costvol_impl=reference`` / ``model.warp_impl=reference`` export
the same network (same numbers) built from plainer ops.
"""

import functools
import glob
import logging
import os
from typing import List, Optional, Tuple

from pwcflow import cli
from pwcflow.config import commands
from pwcflow.deploy import exported, formats, quantize
from pwcflow.device import backend
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight
from pwcflow.files.atomic import atomic_write_bytes
from pwcflow.inference.predictor import FlowPredictor, locate_checkpoint
from pwcflow.model import tuning
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.export")

INPUT_NAME = formats.INPUT_NAME
OUTPUT_NAME = formats.OUTPUT_NAME
FORMATS = ("pb", "savedmodel", "onnx", "tflite", "tftrt")


def input_shape(batch: Optional[int], height: Optional[int], width: Optional[int],
                multiple: int = 64) -> List[Optional[int]]:
    """[batch, 2, height, width, 3] (``None`` = dynamic) after checking that height and width are multiples
    of the model's ``multiple``; ``ExportConfig`` already made each fixed size a positive integer."""
    for key, val in (("height", height), ("width", width)):
        if val is not None and val % multiple:
            up = -(-val // multiple) * multiple
            raise UserError("bad setting %s=%s: must be a multiple of %d (pad frames to %d and crop the flow)"
                            % (key, val, multiple, up))
    return [batch, 2, height, width, 3]


def build(spec: ModelSpec, prefix: str, shape: List[Optional[int]],
          session_config: Optional[tf.ConfigProto] = None) -> FlowPredictor:
    """A restored predictor whose graph has the fixed-shape ``x_tnsr`` input and a ``flow_pred`` output."""
    predictor = FlowPredictor(spec, prefix, session_config, input_shape=shape, finalize=False)
    with predictor.graph.as_default():
        predictor.output = tf.identity(predictor.flow, name=OUTPUT_NAME)
    return predictor


def build_portable(spec: ModelSpec, prefix: str, shape: List[Optional[int]],
                   session_config: Optional[tf.ConfigProto] = None) -> FlowPredictor:
    """``build`` without the host-tuned convolutions (L2-sized splits, shared flow/context heads): one conv per
    layer and head, so the exported graph is the same on every machine and ATC sees plain Conv2D nodes."""
    with tuning.plain_convolutions():
        return build(spec, prefix, shape, session_config)


def freeze(predictor: FlowPredictor) -> tf.GraphDef:
    """Frozen GraphDef (variables folded into constants) holding only what ``flow_pred`` needs."""
    frozen = tf.graph_util.convert_variables_to_constants(
        predictor.sess, predictor.graph.as_graph_def(), [OUTPUT_NAME])
    return tf.graph_util.remove_training_nodes(frozen, protected_nodes=[INPUT_NAME, OUTPUT_NAME])


def write_pb(predictor: FlowPredictor, path: str) -> str:
    """Write the frozen GraphDef to ``path`` (binary protobuf)."""
    data = freeze(predictor).SerializeToString()
    atomic_write_bytes(path, data)
    return path


def write_savedmodel(predictor: FlowPredictor, export_dir: str) -> str:
    """Write a TF1 SavedModel (tag ``serve``, signature ``serving_default``: x_tnsr -> flow_pred)."""
    if os.path.exists(export_dir):
        raise UserError("export directory already exists: %s (choose another out=)" % export_dir)
    sm = tf.saved_model
    signature = sm.signature_def_utils.predict_signature_def(
        inputs={INPUT_NAME: predictor.x}, outputs={OUTPUT_NAME: predictor.output})
    builder = sm.builder.SavedModelBuilder(export_dir)
    with predictor.graph.as_default():
        builder.add_meta_graph_and_variables(
            predictor.sess, [sm.tag_constants.SERVING],
            signature_def_map={sm.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature},
            strip_default_attrs=True)
    builder.save()
    return export_dir


ATC_FILL = {0: ("batch", 1), 2: ("height", 448), 3: ("width", 1024)}  # stand-ins for dynamic dims in the command


def atc_command(pb_name: str, shape: List[Optional[int]], stem: str, soc: str = "Ascend310"
                ) -> Tuple[str, Optional[str]]:
    """The ATC command for the .pb (``--soc_version``: the ``soc_version`` setting) with static dims only, and a
    note naming any dim left dynamic in the graph."""
    static = list(shape)
    dynamic = []
    for index, (key, value) in ATC_FILL.items():
        if static[index] is None:
            static[index] = value
            dynamic.append("%s (filled in as %d)" % (key, value))
    cmd = ("atc --model=%s --framework=3 --input_shape=\"%s:%s\" --output=%s --soc_version=%s"
           % (pb_name, INPUT_NAME, ",".join(str(d) for d in static), stem, soc))
    note = None
    if dynamic:
        note = ("the graph leaves %s dynamic; ATC needs static dims, so the command above fixes them: put your "
                "own sizes in --input_shape" % ", ".join(dynamic))
    return cmd, note


def _write_checked(cfg: commands.ExportConfig, fmt: str, predictor: FlowPredictor, path: str, shape) -> dict:
    """Write ``fmt`` to ``path`` through ``formats.write_checked`` (session output as the reference)."""
    x = exported.sample_input(shape)
    want = predictor.sess.run(predictor.output, {predictor.x: x})
    opts = {"onnx": {"opset": int(cfg.opset)}, "tflite": {"fp16": bool(cfg.fp16)}, "tftrt": {"batch": shape[0]}}
    if fmt in ("pb", "savedmodel"):
        write = functools.partial(write_pb if fmt == "pb" else write_savedmodel, predictor)
    else:
        write = functools.partial(getattr(formats, "write_" + fmt), freeze(predictor), **opts[fmt])
    tol = cfg.tolerance
    if tol is None:
        tol = formats.FP16_TOLERANCE if fmt == "tflite" and cfg.fp16 else formats.TOLERANCE
        tol = quantize.INT8_EPE_TOLERANCE if cfg.int8 else tol
    try:
        tol = float(tol)
    except (TypeError, ValueError):
        raise UserError("bad setting tolerance=%s: must be a number (px)" % tol)
    check = None
    if cfg.int8:  # static QDQ int8, checked by the EPE change on generated pairs (pwcflow.deploy.quantize)
        write = functools.partial(formats.write_onnx_int8, freeze(predictor), shape=shape, opset=int(cfg.opset))
        check = functools.partial(quantize.checked_onnx, session=lambda a: predictor.sess.run(
            predictor.output, {predictor.x: a}), shape=shape, tolerance=tol)
    record = formats.write_checked(fmt, write, path, x, want, tol, check=check)
    record.update({k: v for k, v in opts.get(fmt, {}).items() if k != "batch"})
    if cfg.int8:
        record["int8"] = True
    return record


@cli.entry("export")
def main(cfg: commands.ExportConfig) -> None:
    """Export a checkpoint (pb, SavedModel, ONNX, TFLite or TF-TRT) with a fixed input shape, checked before kept."""
    fmt = cfg.format
    if fmt not in FORMATS:
        raise UserError("bad setting format=%s: must be one of %s" % (fmt, ", ".join(FORMATS)))
    if cfg.int8 and fmt != "onnx":
        raise UserError("bad setting int8=true: int8 is for format=onnx (static QDQ; this is format=%s)" % fmt)
    if fmt == "tftrt":
        formats.check_tftrt()  # before the checkpoint is looked at: no TensorRT or GPU, nothing to do
    if cfg.fp16 and fmt != "tflite":  # until fp16 weights exist for other formats: refused, not ignored
        raise UserError("bad setting fp16=true: only format=tflite has fp16 weights; format=%s is float32 "
                        "(drop fp16=true)" % fmt)
    spec = cfg.model
    shape = input_shape(cfg.batch, cfg.height, cfg.width, spec.multiple)
    prefix = locate_checkpoint(cfg.ckpt, cfg.device, cfg.storage)
    weights = sum(os.path.getsize(f) for f in glob.glob(prefix + ".data-*"))
    out_dir = preflight.preflight_dir(cli.run_dir(cfg.out), "out", need=weights + (1 << 20))
    atomic.remove_stale(out_dir)
    stem = "pwcnet_%s_%s" % (spec.name, "x".join("N" if d is None else str(d) for d in shape[:1] + shape[2:4]))
    path = os.path.join(out_dir, stem + ("_int8" if cfg.int8 else "") + formats.SUFFIX[fmt])
    for target in ([] if fmt == "savedmodel" else [path]) + [formats.sidecar(path)]:  # the SavedModel folder: replaced
        preflight.preflight_file(target, "out")  # a folder in a file's place: refused before the model
    predictor = build_portable(spec, prefix, shape, backend.session_config(cfg.device, training=False))
    try:
        check = _write_checked(cfg, fmt, predictor, path, shape)
    finally:
        predictor.close()
    info = _info(fmt, path, spec, prefix, shape, stem, cfg.soc_version)
    info.update(check)
    atomic.atomic_write_json(formats.sidecar(path), info)
    log.info("wrote %s (input %s %s, output %s)", path, INPUT_NAME, shape, OUTPUT_NAME)


def _info(fmt: str, path: str, spec: ModelSpec, prefix: str, shape: List[Optional[int]], stem: str,
          soc: str) -> dict:
    """The JSON beside the export: what it is, how to feed it (and for a .pb, the ATC command)."""
    info = {"format": fmt, "path": path, "model": spec.name, "ckpt": prefix, "input": INPUT_NAME,
            "input_shape": shape, "input_dtype": "float32", "output": OUTPUT_NAME,
            "output_shape": [shape[0], shape[2], shape[3], 2],
            "preprocess": "RGB uint8 / 255, frames stacked [2, H, W, 3]; zero-pad bottom/right to the input size",
            "postprocess": "crop flow_pred to the original HxW (channels u, v in pixels)"}
    if fmt == "pb":
        info["atc_example"], note = atc_command(os.path.basename(path), shape, stem, soc)
        print("ATC: %s" % info["atc_example"])
        if note:
            info["atc_note"] = note
            print("note: %s" % note)
    return info


if __name__ == "__main__":
    main()

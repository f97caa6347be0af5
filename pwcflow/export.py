"""``python -m pwcflow.export ckpt=PATH format=pb|savedmodel height=448 width=1024 batch=1``.

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

If a converter rejects an op, ``model.costvol_impl=reference`` / ``model.warp_impl=reference`` export
the same network (same numbers) built from plainer ops.
"""

import glob
import logging
import os
from typing import List, Optional

from omegaconf import DictConfig

from pwcflow import cli, config
from pwcflow.errors import UserError
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.predictor import FlowPredictor
from pwcflow.runtime import checkpoint, device, outputs, storage
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.export")

INPUT_NAME = "x_tnsr"
OUTPUT_NAME = "flow_pred"
FORMATS = ("pb", "savedmodel")


def input_shape(batch: Optional[int], height: Optional[int], width: Optional[int],
                multiple: int = 64) -> List[Optional[int]]:
    """[batch, 2, height, width, 3] after checking each fixed size (``None`` = dynamic)."""
    batch, height, width = (config.number(v, k, int, 1, optional=True)
                            for k, v in (("batch", batch), ("height", height), ("width", width)))
    for key, val in (("height", height), ("width", width)):
        if val is not None and int(val) % multiple:
            up = -(-int(val) // multiple) * multiple
            raise UserError("bad setting %s=%s: must be a multiple of %d (pad frames to %d and crop the flow)"
                            % (key, val, multiple, up))
    return [None if batch is None else int(batch), 2, None if height is None else int(height),
            None if width is None else int(width), 3]


def build(spec: ModelSpec, prefix: str, shape: List[Optional[int]],
          session_config: Optional[tf.ConfigProto] = None) -> FlowPredictor:
    """A restored predictor whose graph has the fixed-shape ``x_tnsr`` input and a ``flow_pred`` output."""
    predictor = FlowPredictor(spec, prefix, session_config, input_shape=shape, finalize=False)
    with predictor.graph.as_default():
        predictor.output = tf.identity(predictor.flow, name=OUTPUT_NAME)
    return predictor


def freeze(predictor: FlowPredictor) -> tf.GraphDef:
    """Frozen GraphDef (variables folded into constants) holding only what ``flow_pred`` needs."""
    frozen = tf.graph_util.convert_variables_to_constants(
        predictor.sess, predictor.graph.as_graph_def(), [OUTPUT_NAME])
    return tf.graph_util.remove_training_nodes(frozen, protected_nodes=[INPUT_NAME, OUTPUT_NAME])


def write_pb(predictor: FlowPredictor, path: str) -> str:
    """Write the frozen GraphDef to ``path`` (binary protobuf)."""
    data = freeze(predictor).SerializeToString()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
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


def _run_dir(out: Optional[str]) -> str:
    if out:
        return os.path.abspath(str(out))
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


def _shape_text(shape: List[Optional[int]]) -> str:
    return ",".join("-1" if d is None else str(d) for d in shape)


@cli.entry("export")
def main(cfg: DictConfig) -> None:
    """Export a checkpoint as a frozen GraphDef or SavedModel with a fixed input shape."""
    cli.require(cfg, "ckpt")
    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise UserError("bad setting format=%s: must be one of %s" % (fmt, ", ".join(FORMATS)))
    spec = config.model_spec(cfg.model)
    shape = input_shape(cfg.batch, cfg.height, cfg.width, spec.multiple)
    device.prepare(cfg.device)
    prefix = checkpoint.resolve(storage.localize(str(cfg.ckpt), cfg.storage, "checkpoint"))
    weights = sum(os.path.getsize(f) for f in glob.glob(prefix + ".data-*"))
    out_dir = outputs.preflight_dir(_run_dir(cfg.out), "out", need=weights + (1 << 20))
    stem = "pwcnet_%s_%s" % (spec.name, "x".join("N" if d is None else str(d) for d in shape[:1] + shape[2:4]))
    name = stem + (".pb" if fmt == "pb" else "_savedmodel")
    path = os.path.join(out_dir, name)
    if fmt == "savedmodel" and os.path.exists(path):
        raise UserError("export directory already exists: %s (choose another out=)" % path)
    predictor = build(spec, prefix, shape, device.session_config(cfg.device, training=False))
    # everything is written into a temp sibling of out_dir and moved in whole, the .json last
    with outputs.atomic_dir(out_dir, last=stem + ".json") as stage:
        try:
            (write_pb if fmt == "pb" else write_savedmodel)(predictor, os.path.join(stage, name))
        finally:
            predictor.close()
        checkpoint.write_json_atomic(os.path.join(stage, stem + ".json"), _info(fmt, path, spec, prefix, shape, stem))
    log.info("wrote %s (input %s %s, output %s)", path, INPUT_NAME, shape, OUTPUT_NAME)


def _info(fmt: str, path: str, spec: ModelSpec, prefix: str, shape: List[Optional[int]], stem: str) -> dict:
    """The ``<stem>.json`` beside the export: what it is and how to feed it."""
    info = {"format": fmt, "path": path, "model": spec.name, "ckpt": prefix, "input": INPUT_NAME,
            "input_shape": shape, "input_dtype": "float32", "output": OUTPUT_NAME,
            "output_shape": [shape[0], shape[2], shape[3], 2],
            "preprocess": "RGB uint8 / 255, frames stacked [2, H, W, 3]; zero-pad bottom/right to the input size",
            "postprocess": "crop flow_pred to the original HxW (channels u, v in pixels)"}
    if fmt == "pb":
        info["atc_example"] = ("atc --model=%s --framework=3 --input_shape=\"%s:%s\" --output=%s "
                               "--soc_version=Ascend310" % (os.path.basename(path), INPUT_NAME, _shape_text(shape),
                                                            stem))
    return info


if __name__ == "__main__":
    main()

"""``python -m pwcflow.predict ckpt=PATH img1=A.png img2=B.png out=FLOW.flo [viz=FLOW.png]``.

With ``input=<folder | glob | video | list.txt> out=DIR`` it predicts a whole sequence (``pwcflow.inference.sequence``).
``model_file=X.onnx`` (or ``.tflite``) instead of ``ckpt=`` runs an exported model without TensorFlow
(``pwcflow.deploy.exported``): same padding and cropping, same numbers.
"""

import logging

import numpy as np

from pwcflow import cli
from pwcflow.config import commands
from pwcflow.data import flowio, viz
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight

log = logging.getLogger("pwcflow.predict")


def _predict_ckpt(cfg: commands.PredictConfig, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """Flow from a checkpoint in a TensorFlow session (TensorFlow is imported only here)."""
    from pwcflow.device import backend
    from pwcflow.files import checkpoint
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.storage import cache

    backend.prepare(cfg.device)
    prefix = checkpoint.resolve(cache.localize(cfg.ckpt, cfg.storage, "checkpoint"))
    predictor = FlowPredictor(cfg.model, prefix, backend.session_config(cfg.device, training=False))
    try:
        return predictor.predict(img1, img2)
    finally:
        predictor.close()


def _predict_file(cfg: commands.PredictConfig, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """Flow from an exported ``.onnx`` / ``.tflite`` model (no TensorFlow for ``.onnx``)."""
    from pwcflow.deploy import exported

    return exported.predict_pair(exported.load(cfg.model_file), img1, img2, cfg.model_file)


@cli.entry("predict")
def main(cfg: commands.PredictConfig) -> None:
    """Predict the flow from img1 to img2 and write it as .flo (and optionally a picture); or a sequence."""
    from_file = bool(cfg.model_file)
    if cfg.input:
        if from_file:
            raise UserError("bad setting model_file: sequences (input=) run from a checkpoint (ckpt=) for now")
        cli.require(cfg, "ckpt", "out")
        from pwcflow.inference import sequence

        return sequence.run(cfg)
    cli.require(cfg, *(("img1", "img2", "out") if from_file else ("ckpt", "img1", "img2", "out")))
    out = preflight.preflight_file(cfg.out, "out", exts=(".flo",))
    pic = preflight.preflight_file(str(cfg.viz), "viz", exts=preflight.IMAGE_EXTS) if cfg.viz else None
    img1, img2 = flowio.read_image(cfg.img1), flowio.read_image(cfg.img2)
    if img1.shape != img2.shape:
        raise UserError("images differ in size: %s is %dx%d, %s is %dx%d"
                        % (cfg.img1, img1.shape[1], img1.shape[0], cfg.img2, img2.shape[1], img2.shape[0]))
    flow = (_predict_file if from_file else _predict_ckpt)(cfg, img1, img2)
    files = [(out, lambda tmp: flowio.write_flo(tmp, flow))]
    if pic:
        files.append((pic, lambda tmp: flowio.write_image(tmp, viz.flow_to_color(flow, cfg.max_flow))))
    atomic.atomic_files(files)  # both or neither: a failure leaves the old out= and viz= files as they were
    log.info("wrote %s (%dx%d, max |flow| %.2f px)", cfg.out, flow.shape[1], flow.shape[0], float(abs(flow).max()))


if __name__ == "__main__":
    main()

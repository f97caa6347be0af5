"""``python -m pwcflow.predict ckpt=PATH img1=A.png img2=B.png out=FLOW.flo [viz=FLOW.png]``.

With ``input=<folder | glob | video | list.txt> out=DIR`` it predicts a whole sequence (``pwcflow.inference.sequence``).
``model_file=X.onnx`` (or ``.tflite``) instead of ``ckpt=`` runs an exported model without TensorFlow
(``pwcflow.deploy.exported``): same padding and cropping, same numbers.
``input=camera:N`` (or a stream URL, or ``live.enabled=true``) predicts as frames arrive (``pwcflow.inference.live``).
``max_side=N`` predicts at a reduced size and scales the flow back (``pwcflow.inference.scale``).
"""

import logging

import numpy as np

from pwcflow import cli
from pwcflow.config import commands
from pwcflow.data import flowio, viz
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight
from pwcflow.inference import frames, scale

log = logging.getLogger("pwcflow.predict")


def _predict_ckpt(cfg: commands.PredictConfig, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """Flow from a checkpoint in a TensorFlow session (TensorFlow is imported only here)."""
    from pwcflow.inference.predictor import open_predictor

    predictor = open_predictor(cfg.model, cfg.ckpt, cfg.device, cfg.storage, fits=img1.shape[:2])
    try:
        return predictor.predict(img1, img2)
    finally:
        predictor.close()


def _predict_file(cfg: commands.PredictConfig, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
    """Flow from an exported ``.onnx`` / ``.tflite`` model (no TensorFlow for ``.onnx``)."""
    from pwcflow.deploy import exported

    return exported.predict_pair(exported.load(cfg.model_file), img1, img2, cfg.model_file)


def _live(cfg: commands.PredictConfig) -> None:
    """Live input through ``pwcflow.load`` (a checkpoint, a name or an exported model, at ``max_side``)."""
    from pwcflow.deploy import api
    from pwcflow.inference import live

    if not (cfg.ckpt or cfg.model_file):
        cli.require(cfg, "ckpt")
    opts = live.LiveOptions(out=cfg.out, fmt=cfg.format, viz=bool(cfg.viz), save_frames=cfg.live.save_frames,
                            window=cfg.live.window, max_frames=cfg.live.max_frames, max_flow=cfg.max_flow)
    with api.load(cfg.model_file or cfg.ckpt, model=cfg.model, device=cfg.device, storage=cfg.storage,
                  max_side=cfg.max_side) as m:
        live.run(cfg.input, m, opts, flowio.write_flow, flowio.FLOW_FORMATS[cfg.format])


@cli.entry("predict")
def main(cfg: commands.PredictConfig) -> None:
    """Predict the flow from img1 to img2 and write it as .flo (and optionally a picture); or a sequence."""
    from_file = bool(cfg.model_file)
    if cfg.input and (cfg.live.enabled or frames.is_live(cfg.input)):
        return _live(cfg)
    if cfg.input:
        if cfg.max_side:
            raise UserError("bad setting max_side: a sequence (input=) runs at full size for now; max_side works "
                            "for one pair, live input and pwcflow.load")
        if from_file:
            raise UserError("bad setting model_file: sequences (input=) run from a checkpoint (ckpt=) for now")
        cli.require(cfg, "ckpt", "out")
        from pwcflow.inference import sequence

        return sequence.run(cfg)
    cli.require(cfg, *(("img1", "img2", "out") if from_file else ("ckpt", "img1", "img2", "out")))
    img1, img2 = flowio.read_image(cfg.img1), flowio.read_image(cfg.img2)
    if img1.shape != img2.shape:
        raise UserError("images differ in size: %s is %dx%d, %s is %dx%d"
                        % (cfg.img1, img1.shape[1], img1.shape[0], cfg.img2, img2.shape[1], img2.shape[0]))
    h, w = img1.shape[:2]
    # before the model: writable, with room for the .flo (and the picture, raw pixels as a bound)
    out = preflight.preflight_file(cfg.out, "out", exts=(".flo",), need=h * w * 8 + 12)
    pic = (preflight.preflight_file(str(cfg.viz), "viz", exts=flowio.IMAGE_WRITE_EXTS, need=h * w * 3)
           if cfg.viz else None)
    size = scale.reduced_size(h, w, scale.check_max_side(cfg.max_side))
    small = scale.shrink(img1, size), scale.shrink(img2, size)
    flow = scale.restore_flow((_predict_file if from_file else _predict_ckpt)(cfg, *small), h, w)
    files = [(out, lambda tmp: flowio.write_flo(tmp, flow))]
    if pic:
        files.append((pic, lambda tmp: flowio.write_image(tmp, viz.flow_to_color(flow, cfg.max_flow))))
    atomic.atomic_files(files)  # both or neither: a failure leaves the old out= and viz= files as they were
    log.info("wrote %s (%dx%d, max |flow| %.2f px)", cfg.out, flow.shape[1], flow.shape[0], float(abs(flow).max()))


if __name__ == "__main__":
    main()

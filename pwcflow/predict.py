"""``python -m pwcflow.predict ckpt=PATH img1=A.png img2=B.png out=FLOW.flo [viz=FLOW.png]``."""

import logging

from omegaconf import DictConfig

from pwcflow import cli, config, viz
from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.predictor import FlowPredictor
from pwcflow.runtime import checkpoint, device, outputs

log = logging.getLogger("pwcflow.predict")


@cli.entry("predict")
def main(cfg: DictConfig) -> None:
    """Predict the flow from img1 to img2 and write it as .flo (and optionally a picture)."""
    cli.require(cfg, "ckpt", "img1", "img2", "out")
    out = outputs.preflight_file(str(cfg.out), "out", exts=(".flo",))
    pic = outputs.preflight_file(str(cfg.viz), "viz", exts=outputs.IMAGE_EXTS) if cfg.viz else None
    max_flow = config.number(cfg.max_flow, "max_flow", float, 0.0, low_open=True, optional=True)
    spec = config.model_spec(cfg.model)
    device.prepare(cfg.device)
    img1, img2 = flowio.read_image(str(cfg.img1)), flowio.read_image(str(cfg.img2))
    if img1.shape != img2.shape:
        raise UserError("images differ in size: %s is %dx%d, %s is %dx%d"
                        % (cfg.img1, img1.shape[1], img1.shape[0], cfg.img2, img2.shape[1], img2.shape[0]))
    prefix = checkpoint.resolve(str(cfg.ckpt))
    predictor = FlowPredictor(spec, prefix, device.session_config(cfg.device, training=False))
    flow = predictor.predict(img1, img2)
    predictor.close()
    files = [(out, lambda tmp: flowio.write_flo(tmp, flow))]
    if pic:
        files.append((pic, lambda tmp: flowio.write_image(tmp, viz.flow_to_color(flow, max_flow))))
    outputs.atomic_files(files)  # both or neither: a failure leaves the old out= and viz= files as they were
    log.info("wrote %s (%dx%d, max |flow| %.2f px)", cfg.out, flow.shape[1], flow.shape[0], float(abs(flow).max()))


if __name__ == "__main__":
    main()

"""``python -m pwcflow.predict ckpt=PATH img1=A.png img2=B.png out=FLOW.flo [viz=FLOW.png]``."""

import logging

from pwcflow import cli, config, viz
from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.predictor import FlowPredictor
from pwcflow.runtime import checkpoint, device

log = logging.getLogger("pwcflow.predict")


@cli.entry("predict")
def main(cfg: config.PredictConfig) -> None:
    """Predict the flow from img1 to img2 and write it as .flo (and optionally a picture)."""
    spec = cfg.model
    device.prepare(cfg.device)
    img1, img2 = flowio.read_image(cfg.img1), flowio.read_image(cfg.img2)
    if img1.shape != img2.shape:
        raise UserError("images differ in size: %s is %dx%d, %s is %dx%d"
                        % (cfg.img1, img1.shape[1], img1.shape[0], cfg.img2, img2.shape[1], img2.shape[0]))
    prefix = checkpoint.resolve(cfg.ckpt)
    predictor = FlowPredictor(spec, prefix, device.session_config(cfg.device, training=False))
    flow = predictor.predict(img1, img2)
    predictor.close()
    flowio.write_flo(cfg.out, flow)
    if cfg.viz:
        flowio.write_image(cfg.viz, viz.flow_to_color(flow, cfg.max_flow))
    log.info("wrote %s (%dx%d, max |flow| %.2f px)", cfg.out, flow.shape[1], flow.shape[0], float(abs(flow).max()))


if __name__ == "__main__":
    main()

"""``python -m pwcflow.train``: train PWC-Net on any data set and device with Hydra overrides only.

Run dir ``outputs/train/<run_name>``: ``checkpoints/`` (newest ``train.keep_checkpoints``),
``checkpoints/best/`` (best validation EPE), ``metrics.json``, ``tb/`` (TensorBoard), ``.hydra/``.
Rerunning the same command resumes from the newest complete checkpoint (``resume=true``).
"""

from hydra.core.hydra_config import HydraConfig

from pwcflow import cli
from pwcflow.config import commands
from pwcflow.training.trainer import Trainer, prepare


@cli.entry("train")
def main(cfg: commands.TrainConfig) -> None:
    """Check the data set, then train (or resume) in the Hydra run dir."""
    plan = prepare(cfg)
    run_dir = HydraConfig.get().runtime.output_dir
    cli.save_run_record()  # .hydra/ only once the settings and the data set were accepted
    Trainer(plan, run_dir).run()


if __name__ == "__main__":
    main()

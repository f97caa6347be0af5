"""Learning is real: train on the built-in synthetic set on CPU, compare validation EPE with zero flow.

    .venv/bin/python benchmarks/bench_learning.py [--steps 1000] [--lr 1e-4] [--out DIR] [KEY=VALUE ...]

Runs ``python -m pwcflow.train experiment=demo`` (sm-6-2, 128x192 crops, batch 16) in a temp dir, then
prints the validation EPE history next to the zero-flow baseline of the same validation pairs and
writes JSON. Extra ``KEY=VALUE`` arguments are passed to the runner as Hydra overrides (e.g.
``train.crop=[64,128] train.batch_size=8 loss.gamma=0``). A faithful PWC-Net from random weights sits on a
plateau (EPE ~ zero flow) until its features make the cost volume informative; this shows whether and when
it leaves it (README, "Learning from scratch").
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from omegaconf import OmegaConf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from pwcflow.data import datasets  # noqa: E402


def zero_flow_epe(run_dir: str) -> float:
    """All-pixel EPE of predicting zero on the validation pairs the run scored (its saved data set config)."""
    cfg = OmegaConf.load(os.path.join(run_dir, ".hydra", "config.yaml"))
    samples = datasets.build(datasets.spec_from_config(cfg.dataset), "val")
    pairs = int(cfg.train.val_pairs)
    flows = [s.load()[2] for s in (samples[:pairs] if pairs > 0 else samples)]
    return float(np.mean([np.sqrt((f ** 2).sum(-1)).mean() for f in flows]))


def main() -> None:
    """Run the training, print and save the table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--val-interval", type=int, default=100)
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    ap.add_argument("overrides", nargs="*", help="more Hydra overrides for python -m pwcflow.train")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="pwcflow-learning-")
    cmd = [sys.executable, "-m", "pwcflow.train", "experiment=demo", "train.iterations=%d" % args.steps,
           "train.val_interval=%d" % args.val_interval, "train.save_interval=%d" % args.val_interval,
           "lr_schedule.rates=[%g,%g]" % (args.lr, args.lr / 10)] + list(args.overrides)
    t0 = time.time()
    subprocess.run(cmd, cwd=work, check=True, env=dict(os.environ, PYTHONPATH=ROOT))
    seconds = time.time() - t0
    (run_dir,) = glob.glob(os.path.join(work, "outputs", "train", "*"))  # one run (run_name may be overridden)
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    baseline = zero_flow_epe(run_dir)
    print("\nzero-flow EPE on the validation pairs: %.3f  (%s)" % (baseline, " ".join(cmd[2:])))
    print("%8s %10s %12s" % ("step", "val_epe", "vs zero-flow"))
    for h in metrics["history"]:
        print("%8d %10.3f %11.0f%%" % (h["step"], h["val_epe"], 100 * h["val_epe"] / baseline))
    result = {"command": cmd[2:], "zero_flow_epe": baseline, "history": metrics["history"], "seconds": seconds,
              "best_epe": metrics.get("best_epe"), "best_step": metrics.get("best_step")}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "learning.json"), "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

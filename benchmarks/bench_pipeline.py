"""Training input pipeline throughput at Sintel size (1024x436 frames, crop 384x768, batch 4, heavy augmentation).

Writes a Sintel-layout folder of generated frames in a temp dir, then times ``train_dataset`` (pairs/s) for a
few thread counts, plus the serial per-pair cost of decoding and of augmenting. Prints the figures and saves
them to ``benchmarks/results/bench_pipeline-tf<version>.json``.

    python benchmarks/bench_pipeline.py [--batches 15] [--parallel 1 2 4]
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import layouts  # noqa: E402  (the fixture builders write the official layout)

from pwcflow.data import augment as aug_lib  # noqa: E402
from pwcflow.data.datasets import DatasetSpec, build  # noqa: E402
from pwcflow.data.pipeline import train_dataset  # noqa: E402
from pwcflow.tf1 import TF_VERSION, tf  # noqa: E402

CROP, BATCH = (384, 768), 4
HEAVY = aug_lib.AugmentSpec("heavy", 0.5, 0.5, (0.5, 0.05), (0.5, 0.05))


def pipeline_rate(samples, parallel: int, batches: int, crop=CROP, batch: int = BATCH) -> float:
    """Pairs per second delivered by ``train_dataset`` after a short warm-up."""
    with tf.Graph().as_default():
        ds = train_dataset(samples, crop, batch, HEAVY, seed=0, parallel=parallel)
        nxt = tf.data.make_one_shot_iterator(ds).get_next()
        with tf.Session() as sess:
            for _ in range(3):
                sess.run(nxt)
            start = time.perf_counter()
            for _ in range(batches):
                sess.run(nxt)
            return batches * batch / (time.perf_counter() - start)


def serial_costs(samples, count: int = 8) -> dict:
    """Milliseconds per pair to decode (PNG + .flo) and to crop + augment, on one thread."""
    load = augm = 0.0
    for i in range(count):
        t0 = time.perf_counter()
        img1, img2, flow, valid = samples[i % len(samples)].load()
        t1 = time.perf_counter()
        rng = np.random.RandomState(i)
        aug_lib.augment(aug_lib.random_crop((img1, img2, flow, valid), CROP, rng), HEAVY, rng)
        augm += time.perf_counter() - t1
        load += t1 - t0
    return {"decode_ms": 1000 * load / count, "augment_ms": 1000 * augm / count}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=15)
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        layouts.make_sintel(tmp, scenes=("alley_1", "bamboo_2"), frames=7, size=(436, 1024), passes=("clean",),
                            with_test=False)
        print("wrote a Sintel-layout folder (2 scenes x 7 frames of 1024x436) in %.1f s" % (time.perf_counter() - t0))
        samples = build(DatasetSpec("sintel_clean", "sintel", root=tmp, passes=("clean",)), "all")
        result = {"device": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
                  "python": platform.python_version(), "tensorflow": TF_VERSION, "crop": list(CROP), "batch": BATCH,
                  "augment": "heavy", "serial": serial_costs(samples), "pairs_per_s": {}}
        print("serial, one thread: decode %.1f ms/pair, crop+augment %.1f ms/pair"
              % (result["serial"]["decode_ms"], result["serial"]["augment_ms"]))
        for p in args.parallel:
            rate = pipeline_rate(samples, p, args.batches)
            result["pairs_per_s"][str(p)] = rate
            print("train_dataset parallel=%d: %.1f pairs/s (%.2f s per batch of %d)" % (p, rate, BATCH / rate, BATCH))
    out = ROOT / "benchmarks" / "results" / ("bench_pipeline-tf%s.json" % TF_VERSION)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("saved %s" % out)


if __name__ == "__main__":
    main()

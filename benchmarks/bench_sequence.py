"""Sequence prediction throughput (``pwcflow.inference.sequence.predict_pairs``): batch 1 vs batch N, with and without
``bidirectional``. A generated 12-frame sequence (sm-6-2, random weights, 256x448 by default) is written as
PNGs; each variant predicts it into a fresh folder (.flo), timed in interleaved rounds; prints pairs/s.

    python benchmarks/bench_sequence.py [--size 256 448] [--frames 12] [--batch 4] [--rounds 2]
"""

import argparse
import os
import sys
import tempfile
import time

import common  # noqa: F401 - puts the repo root and tests/ on sys.path
from layouts import sequence

from pwcflow.data import flowio
from pwcflow.inference import frames
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.inference.sequence import Options, predict_pairs
from pwcflow.model.pwcnet import ModelSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(256, 448))
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_sequence-")
    imgs, _ = sequence(tuple(args.size), args.frames, (2, 1), seed=3)
    for i, img in enumerate(imgs):
        flowio.write_image(os.path.join(tmp, "in", "f%03d.png" % i), img)
    pairs, _ = frames.discover(os.path.join(tmp, "in"))
    predictor = FlowPredictor(ModelSpec(name="sm-6-2", dense=False, context_all_levels=False), None, seed=1)
    variants = [("batch 1", 1, False), ("batch %d" % args.batch, args.batch, False),
                ("batch %d bidirectional" % args.batch, args.batch, True)]
    times = {name: [] for name, _, _ in variants}
    predict_pairs(predictor, pairs[:1], frames.FrameReader(), Options(out=os.path.join(tmp, "warm"), progress=False))
    for r in range(args.rounds):
        for name, batch, bidir in variants:
            opts = Options(out=os.path.join(tmp, "out-%d-%s" % (r, name.replace(" ", "_"))), batch=batch,
                           bidirectional=bidir, progress=False)
            t = time.time()
            predict_pairs(predictor, pairs, frames.FrameReader(), opts)
            times[name].append(time.time() - t)
    predictor.close()
    print("sequence of %d pairs at %dx%d, sm-6-2, load %s" % (len(pairs), args.size[0], args.size[1],
                                                             os.getloadavg()), file=sys.stdout)
    for name, ts in times.items():
        best = min(ts)
        print("%-26s %.2f s  %.2f pairs/s" % (name, best, len(pairs) / best))



if __name__ == "__main__":
    main()

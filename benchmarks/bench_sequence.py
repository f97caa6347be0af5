"""Sequence prediction throughput (``pwcflow.inference.sequence.predict_pairs``): the serial loop against the overlapped
one (frames decoded on a reader thread and outputs written on a writer thread beside the forward,
``pwcflow.inference.prefetch``). A generated sequence (default 50 frames, 436x1024 Sintel size, sm-6-2 random
weights) is written as PNGs; each variant predicts it into a fresh folder, timed in interleaved rounds (wall and
process CPU seconds, load beside them); prints pairs/s and, with ``--json``, records the run (``common.record_run``).

    python benchmarks/bench_sequence.py [--size 436 1024] [--frames 50] [--batch 4] [--bidirectional]
        [--format flo] [--model sm-6-2] [--rounds 3] [--json sequence_overlap_xeon_amx]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import common
from layouts import sequence

from pwcflow.data import flowio
from pwcflow.inference import frames
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.inference.sequence import Options, predict_pairs

VARIANTS = ("serial", "overlap")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs=2, default=(436, 1024))
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--bidirectional", action="store_true")
    ap.add_argument("--format", default="flo", choices=["flo", "png16", "npy"])
    ap.add_argument("--model", default="sm-6-2", choices=["sm-6-2", "lg-6-2"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also record the run (common.record_run) under benchmarks/results/")
    args = ap.parse_args()
    load_before = common.load1()
    tmp = tempfile.mkdtemp(prefix="bench_sequence-")
    try:
        imgs, _ = sequence(tuple(args.size), args.frames, (2, 1), seed=3)
        for i, img in enumerate(imgs):
            flowio.write_image(os.path.join(tmp, "in", "f%03d.png" % i), img)
        pairs, _ = frames.discover(os.path.join(tmp, "in"))
        predictor = FlowPredictor(common.variant_spec(args.model, "auto"), None, common.session_config(), seed=1)
        runs = [0]

        def variant(overlap: bool):
            def run() -> None:
                runs[0] += 1
                out = os.path.join(tmp, "out-%d" % runs[0])
                opts = Options(out=out, fmt=args.format, batch=args.batch, bidirectional=args.bidirectional,
                               progress=False, overlap=overlap)
                predict_pairs(predictor, pairs, frames.FrameReader(), opts)
                shutil.rmtree(out)
            return run

        t0 = time.time()
        r = common.interleaved({v: variant(v == "overlap") for v in VARIANTS}, args.rounds)
        predictor.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    n = len(pairs)
    print("%d pairs at %dx%d, %s batch %d%s, %s; %d rounds in %.0f s, load %.1f -> %.1f" % (
        n, args.size[0], args.size[1], args.model, args.batch, " bidirectional" if args.bidirectional else "",
        args.format, args.rounds, time.time() - t0, load_before, common.load1()))
    for v in VARIANTS:
        wall, cpu = common.median(r[v]["wall"]), common.median(r[v]["cpu"])
        print("%-8s %.2f s  %.2f pairs/s  (CPU %.2f s)" % (v, wall, n / wall, cpu))
    print("overlap vs serial: %.2fx (median of per-round ratios %.2fx)" % (
        common.median(r["serial"]["wall"]) / common.median(r["overlap"]["wall"]),
        common.paired_ratio(r["serial"]["wall"], r["overlap"]["wall"])))
    if args.json:
        rows = {v: r[v]["wall"] for v in VARIANTS}
        rows.update({"%s cpu" % v: r[v]["cpu"] for v in VARIANTS})
        print(common.record_run(args.json, " ".join(["python"] + sys.argv), rows,
                                {"overlap_over_serial": ("serial", "overlap"),
                                 "overlap_over_serial_cpu": ("serial cpu", "overlap cpu")}, load_before,
                                extra={"pairs": n, "size": list(args.size), "model": args.model, "batch": args.batch,
                                       "bidirectional": args.bidirectional, "format": args.format}))


if __name__ == "__main__":
    main()

"""Evaluation throughput at Sintel resolution (436x1024 frames, padded to 448x1024) on CPU, batch 1.

Writes a Sintel-layout folder of generated frames in a temp dir, then runs ``pwcflow.eval.evaluate``
(background decoding, ``FlowPredictor``, metrics, contact-sheet thumbnails) for each model variant in a
fresh process, so that each peak memory figure (``ru_maxrss``) is that variant's own. Prints a table and
saves ``benchmarks/results/bench_eval.json``.

    python benchmarks/bench_eval.py [--models lg-6-2 sm-6-2] [--frames 6] [--batch 1] [--threads 0]
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

SCENES = ("alley_1", "bamboo_2")
SIZE = (436, 1024)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one(model: str, root: str, batch: int, threads: int) -> dict:
    """Time one variant in this process (random weights: speed does not depend on them)."""
    from pwcflow.data.datasets import DatasetSpec, build
    from pwcflow.eval import Options, evaluate
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.model.pwcnet import ModelSpec
    from pwcflow.tf1 import TF_VERSION, tf

    lg = model.startswith("lg")
    spec = ModelSpec(name=model, dense=lg, context_all_levels=lg)
    samples = build(DatasetSpec("sintel_clean", "sintel", root=root, passes=("clean",)), "all")
    sess_cfg = tf.ConfigProto(intra_op_parallelism_threads=threads, inter_op_parallelism_threads=threads)
    t0 = time.perf_counter()
    predictor = FlowPredictor(spec, None, sess_cfg, seed=0)
    build_s = time.perf_counter() - t0
    cpu0 = _cpu_seconds()
    out = evaluate(predictor, samples, Options(batch=batch, workers=2, progress=False), passes=("clean",))
    cpu_s = _cpu_seconds() - cpu0
    predictor.close()
    n = out.pairs_done
    steady = (n - batch) / (out.seconds - out.first_batch_seconds) if n > batch else None
    return {"model": model, "pairs": n, "batch": batch, "build_s": build_s, "first_batch_s": out.first_batch_seconds,
            "total_s": out.seconds, "pairs_per_s": n / out.seconds, "steady_pairs_per_s": steady,
            "cpu_s_per_pair": cpu_s / n,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, "tensorflow": TF_VERSION,
            "epe_random_weights": out.metrics.result()["epe"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lg-6-2", "sm-6-2"])
    ap.add_argument("--frames", type=int, default=6, help="frames per scene (2 scenes; pairs = 2 x (frames - 1))")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.root, args.batch, args.threads)))
        return
    import layouts  # the fixture builders write the official layout

    rows, load_before = [], os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        layouts.make_sintel(tmp, scenes=SCENES, frames=args.frames, size=SIZE, passes=("clean",), with_test=False)
        for model in args.models:
            proc = subprocess.run([sys.executable, __file__, "--one", model, "--root", tmp, "--batch", str(args.batch),
                                   "--threads", str(args.threads)], capture_output=True, text=True,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
            if proc.returncode:
                sys.exit("bench failed for %s:\n%s" % (model, proc.stderr[-3000:]))
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print("eval at %dx%d (padded 448x1024), CPU, %d cores, batch %d, TF %s"
          % (SIZE[1], SIZE[0], os.cpu_count(), args.batch, rows[0]["tensorflow"]))
    load = [round(v, 2) for v in load_before + os.getloadavg()]
    print("load average before %.1f/%.1f/%.1f, after %.1f/%.1f/%.1f (other work on the machine slows these figures)"
          % tuple(load))
    print("| model | pairs | build s | first batch s | pairs/s (all) | pairs/s (steady) | s/pair | CPU s/pair "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        steady = r["steady_pairs_per_s"] or r["pairs_per_s"]
        print("| %s | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |" % (
            r["model"], r["pairs"], r["build_s"], r["first_batch_s"], r["pairs_per_s"], steady, 1.0 / steady,
            r["cpu_s_per_pair"], r["peak_rss_mib"]))
    result = {"device": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "python": platform.python_version(), "size": list(SIZE), "padded": [448, 1024],
              "loadavg_before_after": load, "rows": rows}
    out = ROOT / "benchmarks" / "results" / "bench_eval.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("saved %s" % out)


if __name__ == "__main__":
    main()

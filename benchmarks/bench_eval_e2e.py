"""End-to-end evaluation of a Sintel-layout folder (decode -> pad -> predict -> EPE): tfoptflow's way vs pwcflow's.

- ``baseline`` (tfoptflow's loop): each pair decoded in the main thread, then padded and predicted by a graph
  built once and reused, with tfoptflow's formulation of the cost volume and warp (``reference``);
- ``pwcflow``: ``pwcflow.eval.evaluate`` (pairs decoded by background threads while the graph runs,
  ``model.costvol_impl/warp_impl=fused``, optional batching).

Same generated folder (2 scenes of 1024x436 frames with ground truth), same restored random weights, the same
metrics (``FlowMetrics``); each round runs the whole folder once per way, rounds interleaved. The two EPEs
must agree (1e-4 px). Reports pairs/s, GFLOP/s (the forward's multiply-adds at 448x1024) against a matmul timed
in the same run, peak RSS (a fresh process per way) and the ratio. Prints a table and saves
``benchmarks/results/bench_eval_e2e.json``.

    python benchmarks/bench_eval_e2e.py [--model lg-6-2] [--frames 6] [--runs 3] [--batch 1]
"""

import argparse
import json
import os
import tempfile
import time
from typing import Dict

import common

SIZE, PADDED = (436, 1024), (448, 1024)
WAYS = ("baseline", "pwcflow")




class Way:
    """One way of evaluating the folder, with its predictor built once."""

    def __init__(self, way: str, args: argparse.Namespace, ckpt: str, samples):
        """``way``: ``baseline`` or ``pwcflow``."""
        from pwcflow.inference.predictor import FlowPredictor

        self.way, self.args, self.samples = way, args, samples
        variant = "reference" if way == "baseline" else "fused"
        with common.variant_scope(variant):
            self.predictor = FlowPredictor(common.variant_spec(args.model, variant), ckpt,
                                           common.session_config(threads=args.threads))

    def run(self) -> float:
        """Evaluate every pair once; returns the all-pixel EPE."""
        from pwcflow.eval import Options, evaluate, scene_key
        from pwcflow.evaluation.metrics import FlowMetrics
        from pwcflow.inference.predictor import to_input

        if self.way == "pwcflow":
            opts = Options(batch=self.args.batch, workers=self.args.workers, sheet_pairs=0, progress=False)
            return evaluate(self.predictor, self.samples, opts, passes=("clean",)).metrics.total.mean()
        metrics = FlowMetrics()
        for s in self.samples:  # tfoptflow: decode, then predict, one pair after the other
            img1, img2, gt, valid = s.load()
            flow = self.predictor.predict_batch(to_input(img1, img2)[None])[0]
            metrics.update_pair(s.name, scene_key(s, ("clean",)), flow, gt, valid)
        return metrics.total.mean()

    def close(self) -> None:
        """Release the session."""
        self.predictor.close()


def make_data(folder: str, frames: int):
    """A generated Sintel-layout folder (clean pass, with flow) and its samples."""
    import layouts

    layouts.make_sintel(folder, scenes=("alley_1", "bamboo_2"), frames=frames, size=SIZE, passes=("clean",),
                        with_test=False)
    return _samples(folder)


def memory_child(args: argparse.Namespace) -> Dict[str, float]:
    """One way in this fresh process: RSS once the graph is restored, then the peak RSS over one pass."""
    return common.memory_child(lambda: Way(args.one, args, args.ckpt, _samples(args.root)).run, "eval_mib")


def _samples(folder: str):
    """The folder's Sintel clean samples (all split)."""
    from pwcflow.data.datasets import DatasetSpec, build

    return build(DatasetSpec("sintel_clean", "sintel", root=folder, passes=("clean",)), "all")




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lg-6-2")
    ap.add_argument("--frames", type=int, default=6, help="frames per scene (2 scenes; pairs = 2 x (frames - 1))")
    ap.add_argument("--runs", type=int, default=3, help="timed rounds (each evaluates the folder once per way)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1, help="pwcflow's eval batch size")
    ap.add_argument("--workers", type=int, default=2, help="pwcflow's background decode threads")
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-way peak RSS processes")
    ap.add_argument("--out", default="bench_eval_e2e", help="JSON name under benchmarks/results/")
    for hidden in ("--one", "--ckpt", "--root"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(memory_child(args)))
        return
    info = common.machine()
    peaks = [common.matmul_peak(common.session_config(threads=args.threads))]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        root = os.path.join(tmp, "sintel")
        samples = make_data(root, args.frames)
        print("wrote %d Sintel-layout pairs (1024x436) in %.1f s" % (len(samples), time.perf_counter() - t0))
        ckpt = common.save_random_weights(args.model, tmp)
        ways = {w: Way(w, args, ckpt, samples) for w in WAYS}
        epe = {w: ways[w].run() for w in WAYS}  # also the warm-up: first sess.run allocations
        timing = common.interleaved({w: ways[w].run for w in WAYS}, args.runs, max(0, args.warmup - 1))
        for w in ways.values():
            w.close()
        memory = {}
        if not args.no_memory:
            for w in WAYS:
                memory[w] = common.run_json([__file__, "--one", w, "--ckpt", ckpt, "--root", root, "--model",
                                             args.model, "--batch", str(args.batch), "--workers", str(args.workers),
                                             "--threads", str(args.threads)])
    peaks.append(common.matmul_peak(common.session_config(threads=args.threads)))
    info["loadavg_after"] = list(os.getloadavg())
    peak = max(p["gflops_median"] for p in peaks)
    macs = common.pwcnet_macs(common.variant_spec(args.model, "fused"), *PADDED)["total"]
    n = len(samples)
    rows = []
    for w in WAYS:
        med = common.median(timing[w]["wall"])
        rows.append(dict({"way": w, "pairs": n, "median_s": med, "runs_s": timing[w]["wall"],
                          "cpu_s_median": common.median(timing[w]["cpu"]), "pairs_per_s": n / med,
                          "gflops": 2.0 * macs * n / med / 1e9, "epe": epe[w],
                          "speedup_paired": common.paired_ratio(timing["baseline"]["wall"], timing[w]["wall"]),
                          "speedup_cpu": common.paired_ratio(timing["baseline"]["cpu"], timing[w]["cpu"]),
                          "speedup_text": common.speedup_text(timing["baseline"]["wall"], timing[w]["wall"]),
                          "speedup_cpu_text": common.speedup_text(timing["baseline"]["cpu"], timing[w]["cpu"])},
                         **memory.get(w, {})))
    print("\neval end to end, %s, %d pairs of 1024x436 (padded 448x1024), pwcflow batch %d; %s, %d cores; TF %s;"
          " %d interleaved rounds" % (args.model, n, args.batch, info["cpu"], info["cores"], info["tensorflow"],
                                      args.runs))
    print("matmul peak (4096^3 float32, before/after): %s GFLOP/s; load average before %.1f, after %.1f"
          % (" / ".join("%.0f" % p["gflops_median"] for p in peaks), info["loadavg"][0], info["loadavg_after"][0]))
    headers = ["way", "s per pass", "pairs/s", "CPU s per pass", "GFLOP/s", "% of peak", "peak RSS MiB",
               "speed-up (wall)", "speed-up (CPU s)", "EPE (random weights)"]
    print(common.table(headers, [[r["way"], "%.1f" % r["median_s"], "%.3f" % r["pairs_per_s"],
                                  "%.1f" % r["cpu_s_median"], "%.0f" % r["gflops"],
                                  "%.0f%%" % (100 * r["gflops"] / peak),
                                  "%.0f" % r["peak_rss_mib"] if "peak_rss_mib" in r else "-",
                                  r["speedup_text"], r["speedup_cpu_text"], "%.5f" % r["epe"]]
                                 for r in rows]))
    diff = abs(epe["pwcflow"] - epe["baseline"])
    path = common.write_json(args.out, {"machine": info, "args": vars(args), "matmul_peak": peaks, "rows": rows,
                                        "epe_abs_diff": diff})
    print("EPE difference %.1e px; saved %s" % (diff, path))
    if diff > 1e-4:
        raise SystemExit("EPEs differ by more than 1e-4 px")


if __name__ == "__main__":
    main()

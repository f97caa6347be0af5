"""Forward pass at Sintel size (436x1024 padded to 448x1024): pwcflow's fused ops vs tfoptflow's formulation.

For each model and batch size, both variants (``reference``: tfoptflow's formulation: 81-op cost volume,
4-gather warp, one convolution per layer; ``fused``: pwcflow's default: batched-matmul cost volume, one-gather
warp, large convolutions split into L2-sized output-channel groups on CPU) get the same random weights (one
checkpoint, restored into both) and the same input, are timed in interleaved rounds in one process, and their
flows are compared (must agree within 1e-4 px). Reports median wall and CPU time, pairs/s, achieved GFLOP/s
(multiply-adds counted from the layer shapes) next to a large matmul's GFLOP/s measured in the same run, peak
memory (CPU: peak RSS of a fresh process per variant; GPU: TensorFlow's allocator peak) and the speed-ups
(paired per round: wall clock, and CPU seconds, which other processes' load disturbs less). Prints a table and
saves ``benchmarks/results/raw/bench_forward.json`` (``--json NAME``: also the committed ``record_run`` format).

    python benchmarks/bench_forward.py                                  # CPU: lg and sm, batch 1 and 8
    python benchmarks/bench_forward.py --device gpu --xla both --precision both   # the GPU table
"""

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Dict, List

import common
import numpy as np

SIZE, PADDED = (436, 1024), (448, 1024)




def inputs(batch: int) -> np.ndarray:
    """``batch`` textured Sintel-size pairs (moving by a few px), zero-padded to 448x1024: [B, 2, 448, 1024, 3]."""
    import layouts

    from pwcflow.inference.predictor import pad_to_multiple, to_input

    pairs = []
    for i in range(batch):
        (img1, img2), _ = layouts.sequence(SIZE, 2, (3 - i % 3, 2 - i % 2), seed=10 + i)
        pairs.append(to_input(img1, img2))
    return pad_to_multiple(np.stack(pairs), 64, (2, 3))




def memory_child(args: argparse.Namespace) -> Dict[str, float]:
    """One variant in this fresh process: RSS once restored, then the process's peak RSS over one forward pass."""
    from pwcflow.inference.predictor import FlowPredictor

    x = inputs(args.batch)
    cfg = common.session_config(args.device, args.threads, args.xla == "on", args.precision == "mixed")

    def build():
        with common.variant_scope(args.one):
            p = FlowPredictor(common.variant_spec(args.model, args.one), args.ckpt, cfg, input_shape=x.shape)
        return lambda: p.sess.run(p.flow, {p.x: x})

    return common.memory_child(build, "forward_mib")


def measure(args: argparse.Namespace, model: str, ckpt: str, batch: int, precision: str, xla: str,
            fp32_flow: Dict[tuple, np.ndarray]) -> List[dict]:
    """Time both formulations of one configuration in interleaved rounds; one row per formulation."""
    from pwcflow.inference.predictor import FlowPredictor

    x = inputs(batch)
    mixed = precision == "mixed"
    cfg = common.session_config(args.device, args.threads, xla == "on", mixed)
    preds, build = {}, {}
    for impl in args.impls:
        t0 = time.perf_counter()
        with common.variant_scope(impl):
            preds[impl] = FlowPredictor(common.variant_spec(model, impl), ckpt, cfg, input_shape=x.shape)
        build[impl] = time.perf_counter() - t0
    gpu = args.device == "gpu"
    flows, gpu_peak = {}, {}
    for impl, p in preds.items():  # first call: compiles (XLA), checks outputs, measures GPU memory
        if gpu:
            _reset_gpu_peak()
        flows[impl] = p.sess.run(p.flow, {p.x: x})[:, :SIZE[0], :SIZE[1]]
        gpu_peak[impl] = common.gpu_peak_mib() if gpu else None
    fns = {impl: (lambda p=p: p.sess.run(p.flow, {p.x: x})) for impl, p in preds.items()}
    timing = common.interleaved(fns, args.runs, args.warmup)
    for p in preds.values():
        p.close()
    macs = common.pwcnet_macs(common.variant_spec(model, "fused"), *PADDED)["total"] * batch
    base = timing[args.impls[0]]["wall"]
    key = (model, batch)
    if not mixed and xla == "off":
        fp32_flow[key] = flows[args.impls[-1]]
    rows = []
    for impl in args.impls:
        t = timing[impl]
        med = common.median(t["wall"])
        row = {"model": model, "batch": batch, "precision": precision, "xla": xla, "impl": impl,
               "build_s": build[impl], "first_run_s": t["first"], "median_s": med, "min_s": min(t["wall"]),
               "runs_s": t["wall"], "cpu_runs_s": t["cpu"], "cpu_s_median": common.median(t["cpu"]),
               "pairs_per_s": batch / med,
               "gflops": 2.0 * macs / med / 1e9, "macs": macs, "gpu_peak_mib": gpu_peak[impl],
               "speedup_vs_baseline": common.median(base) / med, "speedup_paired": common.paired_ratio(base, t["wall"]),
               "speedup_cpu": common.paired_ratio(timing[args.impls[0]]["cpu"], t["cpu"]),
               "speedup_text": common.speedup_text(base, t["wall"]),
               "speedup_cpu_text": common.speedup_text(timing[args.impls[0]]["cpu"], t["cpu"]),
               "max_abs_diff_vs_baseline_px": float(np.abs(flows[impl] - flows[args.impls[0]]).max())}
        if key in fp32_flow and mixed:
            diff = np.abs(flows[impl] - fp32_flow[key])
            row["vs_fp32_max_px"], row["vs_fp32_mean_px"] = float(diff.max()), float(diff.mean())
        rows.append(row)
    return rows


def _figures(rows: List[dict], baseline: str):
    """``record_run``'s rows (per-round wall seconds, and process CPU seconds as ``... cpu``) and ratios
    (baseline / each variant, wall and CPU) from ``measure``'s rows."""
    def name(r: dict, impl: str) -> str:
        return "%s b%d %s xla=%s %s" % (r["model"], r["batch"], r["precision"], r["xla"], impl)

    times, ratios = {}, {}
    for suffix, key in (("", "runs_s"), (" cpu", "cpu_runs_s")):
        times.update({name(r, r["impl"]) + suffix: r[key] for r in rows})
        ratios.update({name(r, r["impl"] + " vs " + baseline) + suffix: (name(r, baseline) + suffix,
                                                                        name(r, r["impl"]) + suffix)
                       for r in rows if r["impl"] != baseline})
    return times, ratios


def _reset_gpu_peak() -> None:
    try:
        from pwcflow.tf1 import tf

        tf.config.experimental.reset_memory_stats("GPU:0")
    except Exception:  # noqa: BLE001 - older TF: the peak then covers the whole process
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lg-6-2", "sm-6-2"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=5, help="timed rounds (each runs every formulation once)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--impls", nargs="+", default=["reference", "fused"], choices=list(common.VARIANTS),
                    help="variants, baseline first (common.VARIANTS)")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--xla", choices=["off", "on", "both"], default="off", help="device.xla (global JIT)")
    ap.add_argument("--precision", choices=["fp32", "mixed", "both"], default="fp32",
                    help="mixed = device.mixed_precision (GPU auto mixed precision; no effect on CPU)")
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    ap.add_argument("--tf32", choices=["off", "on"], default="off",
                    help="TensorFloat-32 on Ampere+ GPUs (TF's default is on; off keeps fp32 rows float32)")
    ap.add_argument("--memory", choices=["fp32", "all", "none"], default="fp32",
                    help="CPU peak RSS per variant (fresh process each): for fp32/XLA-off rows, all rows or none")
    ap.add_argument("--peak-n", type=int, default=4096, help="size of the matmul timed for the peak")
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max |flow difference| allowed (px, fp32)")
    ap.add_argument("--out", default="bench_forward", help="JSON name under benchmarks/results/raw/")
    ap.add_argument("--json", help="also record the run (common.record_run) at this path, e.g. forward_xeon")
    for hidden in ("--one", "--model", "--ckpt", "--batch"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    tf32 = common.set_tf32(args.tf32 == "on")
    if args.one:
        args.batch = int(args.batch)
        print(json.dumps(memory_child(args)))
        return
    if args.device == "cpu" and args.precision != "fp32":
        print("note: device.mixed_precision only rewrites graphs on GPU; on CPU the 'mixed' rows run in float32")
    load_before = common.load1()
    info = common.machine()
    info["tf32"] = tf32
    dev = "/GPU:0" if args.device == "gpu" else None
    cfg = common.session_config(args.device, args.threads)
    peaks = [common.matmul_peak(cfg, args.peak_n, device=dev)]
    xlas = ["off", "on"] if args.xla == "both" else [args.xla]
    precisions = ["fp32", "mixed"] if args.precision == "both" else [args.precision]
    rows, fp32_flow = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            ckpt = common.save_random_weights(model, tmp)
            for batch in args.batches:
                for precision in precisions:
                    for xla in xlas:
                        got = measure(args, model, ckpt, batch, precision, xla, fp32_flow)
                        want_mem = args.device == "cpu" and (
                            args.memory == "all" or (args.memory == "fp32" and precision == "fp32" and xla == "off"))
                        for row in got:
                            if want_mem:
                                row.update(common.run_json([__file__, "--one", row["impl"], "--model", model, "--ckpt",
                                                            ckpt, "--batch", str(batch), "--device", args.device,
                                                            "--xla", xla, "--precision", precision,
                                                            "--threads", str(args.threads)]))
                            rows.append(row)
                            print("%s b%d %s xla=%s %-9s median %.3f s  %.2f pairs/s  %.0f GFLOP/s  %s" % (
                                model, batch, precision, xla, row["impl"], row["median_s"], row["pairs_per_s"],
                                row["gflops"], row["speedup_text"]), flush=True)
    peaks.append(common.matmul_peak(cfg, args.peak_n, device=dev))
    peak = max(p["gflops_median"] for p in peaks)
    info["loadavg_after"] = list(os.getloadavg())
    who = ", ".join(info["gpus"]) if args.device == "gpu" else "%s, %d cores" % (info["cpu"], info["cores"])
    tf32_note = "; TF32 %s" % args.tf32 if args.device == "gpu" else ""
    print("\nforward at 436x1024 (padded 448x1024) on %s; TF %s, Python %s; %d interleaved rounds, medians%s"
          % (who, info["tensorflow"], info["python"], args.runs, tf32_note))
    print("matmul peak (%dx%d float32, median of 5, before/after): %s GFLOP/s; load average before %.1f, after %.1f"
          % (args.peak_n, args.peak_n, " / ".join("%.0f" % p["gflops_median"] for p in peaks), info["loadavg"][0],
             info["loadavg_after"][0]))
    mem_head = "peak RSS MiB (forward part)" if args.device == "cpu" else "GPU peak MiB"
    headers = ["model", "batch", "precision", "XLA", "variant", "s/batch", "pairs/s", "GFLOP/s", "% of peak",
               "CPU s/batch", mem_head, "speed-up (wall)", "speed-up (CPU s)", "max abs Δflow px"]
    body = []
    for r in rows:
        mem = r.get("gpu_peak_mib")
        mem = "%.0f" % mem if mem else "-"
        if r.get("peak_rss_mib"):
            mem = "%.0f (%.0f)" % (r["peak_rss_mib"], r["forward_mib"])
        diff = "%.1e" % r["max_abs_diff_vs_baseline_px"]
        if "vs_fp32_max_px" in r:
            diff += " (vs fp32 %.1e)" % r["vs_fp32_max_px"]
        body.append([r["model"], r["batch"], r["precision"], r["xla"], r["impl"], "%.3f" % r["median_s"],
                     "%.2f" % r["pairs_per_s"], "%.0f" % r["gflops"], "%.0f%%" % (100 * r["gflops"] / peak),
                     "%.2f" % r["cpu_s_median"], mem, r["speedup_text"], r["speedup_cpu_text"], diff])
    print(common.table(headers, body))
    bad = [r for r in rows if r["precision"] == "fp32" and r["max_abs_diff_vs_baseline_px"] > args.tolerance]
    path = common.write_json(args.out, {"machine": info, "args": vars(args), "matmul_peak": peaks, "rows": rows,
                                        "size": list(SIZE), "padded": list(PADDED), "tf_threads": args.threads})
    print("saved %s" % path)
    if args.json:
        diffs = {"%s b%d %s %s" % (r["model"], r["batch"], r["precision"], r["impl"]): r["max_abs_diff_vs_baseline_px"]
                 for r in rows}
        print(common.record_run(args.json, " ".join(["python"] + sys.argv), *_figures(rows, args.impls[0]),
                                load_before, peak, {"max_abs_diff_vs_%s_px" % args.impls[0]: diffs}))
    if bad:
        sys.exit("outputs differ from the baseline by more than %g px: %s" % (
            args.tolerance, ["%s b%d %s" % (r["model"], r["batch"], r["impl"]) for r in bad]))


if __name__ == "__main__":
    main()

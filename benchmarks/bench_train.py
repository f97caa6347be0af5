"""Training step throughput (Sintel fine-tune: lg-6-2, crop 384x768, batch 4) beside the input pipeline's rate.

On a generated Sintel-layout folder (2 scenes x 7 frames of 1024x436):

1. the input pipeline alone (``bench_pipeline.pipeline_rate``: ``train_dataset`` decoding and augmenting with
   one thread per core) in pairs/s;
2. one training step (forward, robust loss + weight decay, backward, update) on a fixed in-memory batch taken
   from that pipeline, for tfoptflow's formulation (``reference``) and pwcflow's (``fused``), same restored
   random weights, timed in interleaved rounds; losses and gradients before the first update are compared
   (worst variable: max |difference| / its largest gradient);
3. the fused step fed by the pipeline itself (what ``pwcflow.train`` runs), interleaved with the fixed-batch
   step, to show whether input starves it.

Reports pairs/s, GFLOP/s (3x the forward multiply-adds: forward, input and weight gradients) against a large
matmul timed in the same run, peak RSS per formulation (fresh process each), and the pipeline/step ratio.
Prints a table and saves ``benchmarks/results/bench_train.json``.

    python benchmarks/bench_train.py                                   # lg-6-2, 384x768, batch 4
    python benchmarks/bench_train.py --model sm-6-2 --crop 256 448 --batch 2 --runs 5   # quicker on a small CPU
"""

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Dict

import common
import numpy as np


class Step:
    """One training graph: PWC-Net on (x, y, valid), tfoptflow's loss + weight decay, one optimizer update."""

    def __init__(self, args: argparse.Namespace, impl: str, ckpt: str, batch=None, dataset=None,
                 precision: str = "fp32"):
        """``batch``: fixed numpy (x, y, valid) held in variables, or ``dataset``: a callable making the data set;
        ``precision``: ``device.precision`` of the graph (bf16: ``device.precision.graph`` with the default keep-list:
        forward and gradients in bfloat16, float32 variables)."""
        from pwcflow.device import precision as precision_lib
        from pwcflow.files import checkpoint
        from pwcflow.model import losses
        from pwcflow.model.pwcnet import pwcnet
        from pwcflow.tf1 import tf

        self.graph = tf.Graph()
        with self.graph.as_default():
            if dataset is not None:
                x, y, valid = tf.data.make_one_shot_iterator(dataset()).get_next()
                feeds = {}
            else:
                phs = [tf.placeholder(tf.float32, a.shape) for a in batch]
                x, y, valid = [tf.Variable(p, trainable=False, collections=[]) for p in phs]
                feeds = dict(zip(phs, batch))
                data_init = tf.variables_initializer([x, y, valid])
            dev = common.device_group(args.device, precision=precision)
            with common.variant_scope(impl), precision_lib.graph(precision_lib.fp32_layers(dev)):
                _, pyramid = pwcnet(x, common.variant_spec(args.model, impl))
            order, eps, q = losses.KINDS[args.loss]
            loss_unreg, _ = losses.pyramid_loss(y, pyramid, order, eps, q, losses.ALPHAS, valid)
            self.loss = loss_unreg + losses.weight_decay(tf.trainable_variables(), 4e-4)
            adam = args.optimizer == "adam"
            opt = tf.train.AdamOptimizer(1e-4) if adam else tf.train.GradientDescentOptimizer(1e-5)
            grads = opt.compute_gradients(self.loss)
            self.grads = [g for g, _ in grads]
            self.grad_norm = tf.global_norm(self.grads)
            self.train_op = opt.apply_gradients(grads)
            model_vars = checkpoint.model_variables()
            saver = tf.train.Saver(var_list={v.op.name: v for v in model_vars})
            init = tf.global_variables_initializer()
        self.graph.finalize()
        cfg = common.session_config(args.device, args.threads, args.xla, training=True, precision=precision)
        self.sess = tf.Session(graph=self.graph, config=cfg)
        self.sess.run(init)
        if feeds:
            self.sess.run(data_init, feeds)
        checkpoint.restore(self.sess, ckpt, model_vars, args.model, saver=saver)

    def run(self) -> None:
        """One update."""
        self.sess.run(self.train_op)

    def close(self) -> None:
        """Release the session."""
        self.sess.close()




def make_data(folder: str):
    """A generated Sintel-layout folder (clean pass) and its samples."""
    import layouts

    from pwcflow.data.datasets import DatasetSpec, build

    layouts.make_sintel(folder, scenes=("alley_1", "bamboo_2"), frames=7, size=(436, 1024), passes=("clean",),
                        with_test=False)
    return build(DatasetSpec("sintel_clean", "sintel", root=folder, passes=("clean",)), "all")


def dataset(args: argparse.Namespace, samples):
    """The training input pipeline as ``pwcflow.train`` builds it (heavy augmentation, one thread per core)."""
    import bench_pipeline

    from pwcflow.data.pipeline import train_dataset

    return train_dataset(samples, tuple(args.crop), args.batch, bench_pipeline.HEAVY, seed=0,
                         parallel=args.loader_threads or None)


def one_batch(args: argparse.Namespace, samples):
    """One real augmented batch (x, y, valid) from the pipeline, as numpy."""
    from pwcflow.tf1 import tf

    with tf.Graph().as_default():
        nxt = tf.data.make_one_shot_iterator(dataset(args, samples)).get_next()
        with tf.Session() as sess:
            return sess.run(nxt)


def memory_child(args: argparse.Namespace) -> Dict[str, float]:
    """One formulation in this fresh process: RSS once restored, then the peak RSS over two steps."""
    batch = tuple(np.load(args.batch_file)[k] for k in ("x", "y", "valid"))
    impl, _, prec = args.one.partition("/")
    return common.memory_child(lambda: Step(args, impl, args.ckpt, batch=batch, precision=prec or "fp32").run,
                               "step_mib", runs=2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lg-6-2")
    ap.add_argument("--crop", type=int, nargs=2, default=[384, 768], metavar=("H", "W"))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--loss", choices=["robust", "multiscale"], default="robust")
    ap.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="sgd: the Sintel fine-tune preset")
    ap.add_argument("--runs", type=int, default=3, help="timed rounds (each runs every formulation once)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--impls", nargs="+", default=["reference", "fused"], choices=list(common.VARIANTS),
                    help="variants, baseline first (common.VARIANTS)")
    ap.add_argument("--precisions", nargs="+", default=["fp32"], choices=["fp32", "bf16"],
                    help="device.precision of each variant's session (several: variant/precision rows)")
    ap.add_argument("--pipeline-batches", type=int, default=10)
    ap.add_argument("--e2e-steps", type=int, default=3, help="fused steps fed by the pipeline (0 = skip)")
    ap.add_argument("--loader-threads", type=int, default=0, help="pipeline threads (0 = one per core)")
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--xla", action="store_true", help="device.xla (global JIT)")
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0 = TF default)")
    ap.add_argument("--tf32", choices=["off", "on"], default="off", help="TensorFloat-32 on Ampere+ GPUs")
    ap.add_argument("--no-memory", action="store_true", help="skip the per-formulation peak RSS processes")
    ap.add_argument("--out", default="bench_train", help="JSON name under benchmarks/results/")
    for hidden in ("--one", "--ckpt", "--batch-file"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    args = ap.parse_args()
    tf32 = common.set_tf32(args.tf32 == "on")
    if args.one:
        print(json.dumps(memory_child(args)))
        return
    import bench_pipeline

    info = common.machine()
    info["tf32"] = tf32
    cfg = common.session_config(args.device, args.threads, args.xla, training=True)
    peaks = [common.matmul_peak(cfg, device="/GPU:0" if args.device == "gpu" else None)]
    threads = args.loader_threads or os.cpu_count()
    res: Dict[str, object] = {"machine": info, "args": vars(args)}
    variants = [i + ("/" + p if len(args.precisions) > 1 or p != "fp32" else "") for i in args.impls
                for p in args.precisions]
    with tempfile.TemporaryDirectory() as tmp:
        samples = make_data(os.path.join(tmp, "sintel"))
        res["pipeline_pairs_per_s"] = bench_pipeline.pipeline_rate(samples, threads, args.pipeline_batches,
                                                                   tuple(args.crop), args.batch)
        print("input pipeline (%d threads): %.2f pairs/s" % (threads, res["pipeline_pairs_per_s"]), flush=True)
        batch = one_batch(args, samples)
        batch_file = os.path.join(tmp, "batch.npz")
        np.savez(batch_file, x=batch[0], y=batch[1], valid=batch[2])
        ckpt = common.save_random_weights(args.model, tmp)
        steps, build = {}, {}
        for impl in variants:
            t0 = time.perf_counter()
            name, _, prec = impl.partition("/")
            steps[impl] = Step(args, name, ckpt, batch=batch, precision=prec or "fp32")
            build[impl] = time.perf_counter() - t0
        check = {impl: s.sess.run([s.loss, s.grad_norm, s.grads]) for impl, s in steps.items()}
        timing = common.interleaved({k: s.run for k, s in steps.items()}, args.runs, args.warmup)
        ours = variants[-1]
        for impl, s in steps.items():
            if impl != ours or not args.e2e_steps:
                s.close()
        macs = 3 * common.pwcnet_macs(common.variant_spec(args.model, "fused"), *args.crop)["total"] * args.batch
        base = variants[0]
        rows = []
        for impl in variants:
            t = timing[impl]
            med = common.median(t["wall"])
            row = {"impl": impl, "build_s": build[impl], "first_step_s": t["first"], "median_s": med,
                   "runs_s": t["wall"], "cpu_s_median": common.median(t["cpu"]), "pairs_per_s": args.batch / med,
                   "gflops": 2.0 * macs / med / 1e9, "loss0": float(check[impl][0]),
                   "grad_norm0": float(check[impl][1]),
                   "speedup_paired": common.paired_ratio(timing[base]["wall"], t["wall"]),
                   "speedup_cpu": common.paired_ratio(timing[base]["cpu"], t["cpu"]),
                   "speedup_text": common.speedup_text(timing[base]["wall"], t["wall"]),
                   "speedup_cpu_text": common.speedup_text(timing[base]["cpu"], t["cpu"])}
            row["loss0_rel_diff"] = abs(row["loss0"] - check[base][0]) / abs(check[base][0])
            row["grad_norm0_rel_diff"] = abs(row["grad_norm0"] - check[base][1]) / abs(check[base][1])
            row["grad_max_rel_diff"] = max(float(np.abs(g - g0).max() / max(np.abs(g0).max(), 1e-30))
                                           for g, g0 in zip(check[impl][2], check[base][2]))
            if not args.no_memory:
                row.update(common.run_json([__file__, "--one", impl, "--ckpt", ckpt, "--batch-file", batch_file,
                                            "--model", args.model, "--batch", str(args.batch), "--loss", args.loss,
                                            "--optimizer", args.optimizer, "--device", args.device,
                                            "--threads", str(args.threads)] + (["--xla"] if args.xla else [])))
            rows.append(row)
            print("step %-9s median %.2f s  %.3f pairs/s  %s" % (impl, med, row["pairs_per_s"],
                                                                row["speedup_text"]), flush=True)
        res["rows"] = rows
        if args.e2e_steps:  # the same step fed by the pipeline, interleaved with the fixed-batch step
            name, _, prec = ours.partition("/")
            fed = Step(args, name, ckpt, dataset=lambda: dataset(args, samples), precision=prec or "fp32")
            both = common.interleaved({"fixed": steps[ours].run, "fed": fed.run}, args.e2e_steps, args.warmup + 1)
            fed.close()
            steps[ours].close()
            res["e2e_pairs_per_s"] = args.batch / common.median(both["fed"]["wall"])
            res["e2e_fixed_pairs_per_s"] = args.batch / common.median(both["fixed"]["wall"])
            res["e2e_fed_over_fixed"] = common.paired_ratio(both["fed"]["wall"], both["fixed"]["wall"])
            print("%s step fed by the pipeline: %.3f pairs/s (fixed batch in the same rounds: %.3f pairs/s)"
                  % (ours, res["e2e_pairs_per_s"], res["e2e_fixed_pairs_per_s"]), flush=True)
    peaks.append(common.matmul_peak(cfg, device="/GPU:0" if args.device == "gpu" else None))
    res["matmul_peak"] = peaks
    info["loadavg_after"] = list(os.getloadavg())
    peak = max(p["gflops_median"] for p in peaks)
    last = rows[-1]
    res["pipeline_over_step"] = res["pipeline_pairs_per_s"] / last["pairs_per_s"]
    print("\ntraining step, %s, crop %dx%d, batch %d, %s loss + %s; %s, %d cores; TF %s; %d interleaved rounds"
          % (args.model, args.crop[1], args.crop[0], args.batch, args.loss, args.optimizer, info["cpu"], info["cores"],
             info["tensorflow"], args.runs))
    print("matmul peak (4096^3 float32, before/after): %s GFLOP/s; load average before %.1f, after %.1f"
          % (" / ".join("%.0f" % p["gflops_median"] for p in peaks), info["loadavg"][0], info["loadavg_after"][0]))
    headers = ["variant", "s/step", "pairs/s", "GFLOP/s (3x fwd MACs)", "% of peak", "CPU s/step",
               "peak RSS MiB (step part)", "speed-up (wall)", "speed-up (CPU s)",
               "loss / grad-norm / worst-grad rel. diff"]
    body = [[r["impl"], "%.2f" % r["median_s"], "%.3f" % r["pairs_per_s"], "%.0f" % r["gflops"],
             "%.0f%%" % (100 * r["gflops"] / peak), "%.2f" % r["cpu_s_median"],
             "%.0f (%.0f)" % (r["peak_rss_mib"], r["step_mib"]) if "peak_rss_mib" in r else "-",
             r["speedup_text"], r["speedup_cpu_text"],
             "%.0e / %.0e / %.0e" % (r["loss0_rel_diff"], r["grad_norm0_rel_diff"], r["grad_max_rel_diff"])]
            for r in rows]
    print(common.table(headers, body))
    print("input pipeline alone: %.2f pairs/s = %.1fx the %s step's %.3f pairs/s" % (
        res["pipeline_pairs_per_s"], res["pipeline_over_step"], last["impl"], last["pairs_per_s"]))
    if "e2e_pairs_per_s" in res:
        print("step fed by the pipeline: %.3f pairs/s vs %.3f with a fixed in-memory batch, same rounds (%.2fx)"
              % (res["e2e_pairs_per_s"], res["e2e_fixed_pairs_per_s"], 1.0 / res["e2e_fed_over_fixed"]))
    print("saved %s" % common.write_json(args.out + "_raw" if "/" in base else args.out, res))
    bf16_peak = None
    if "bf16" in args.precisions:
        bf16_peak = common.matmul_peak(common.session_config(args.device, args.threads, training=True),
                                       dtype="bfloat16")["gflops_median"]
        print("bf16 matmul peak (4096^3, same process): %.0f GFLOP/s" % bf16_peak)
    if "/" in base:  # precisions compared: the committed run (benchmarks/results/<out>.json, common.record_run)
        rows_s = {impl: timing[impl]["wall"] for impl in variants}
        rows_s.update({impl + " cpu": timing[impl]["cpu"] for impl in variants})  # process CPU s: fairer under load
        ratios = {"%s_over_%s%s" % (impl.replace("/", "-"), base.replace("/", "-"), cpu): (base + cpu, impl + cpu)
                  for impl in variants[1:] for cpu in ("", " cpu")}
        print("saved %s" % common.record_run(
            args.out, "python benchmarks/bench_train.py " + " ".join(sys.argv[1:]), rows_s,
            {k.replace(" ", "_"): v for k, v in ratios.items()}, info["loadavg"][0],
            matmul_peak_gflops=max(p["gflops_median"] for p in peaks),
            extra={"bf16_matmul_peak_gflops": bf16_peak, "loss0": {r["impl"]: r["loss0"] for r in rows},
                   "grad_max_rel_diff": {r["impl"]: r["grad_max_rel_diff"] for r in rows}}))


if __name__ == "__main__":
    main()

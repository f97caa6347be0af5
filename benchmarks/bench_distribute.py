"""Single-process vs 2-worker (collective all-reduce on 127.0.0.1) training throughput on CPU.

    .venv/bin/python benchmarks/bench_distribute.py [--steps 30] [--batch 8] [--size 64]

Each run is a fresh process training the same small conv net through ``pwcflow.device.distribute``; the
table and benchmarks/results/bench_distribute-<tf>.json give samples/s. CPU collectives go through gRPC on
one machine whose cores both workers share, so this shows the engine's overhead, not a speed-up (that needs
separate machines or GPUs); on a small shared VM the ratio is noisy from run to run.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(args: argparse.Namespace) -> dict:
    """Train ``args.steps`` timed steps after ``args.warmup``; return this process's timing."""
    import numpy as np

    from pwcflow.config.compose import compose_group
    from pwcflow.device import backend, distribute
    from pwcflow.tf1 import TF_VERSION, tf

    dev = compose_group("device", "cpu", {
        "intra_op_threads": args.threads, "distribute.rank": args.rank,
        "distribute.workers": ["127.0.0.1:%s" % p for p in args.ports.split(",")] if args.ports else []})
    engine = distribute.create(dev)
    rng = np.random.RandomState(0)
    images = rng.rand(64, args.size, args.size, 6).astype(np.float32)
    flows = rng.randn(64, args.size // 4, args.size // 4, 2).astype(np.float32)
    with tf.Graph().as_default():
        index, count = engine.shard()
        data = tf.data.Dataset.from_tensor_slices((images, flows)).shard(count, index).repeat().batch(args.batch)
        x, y = tf.data.make_one_shot_iterator(data.prefetch(2)).get_next()

        def loss_fn() -> tf.Tensor:
            h = x
            for i, (ch, stride) in enumerate([(32, 2), (64, 2), (64, 1), (32, 1)]):
                k = tf.get_variable("conv%d" % i, [3, 3, h.shape[-1], ch])
                h = tf.nn.leaky_relu(tf.nn.conv2d(h, k, [1, stride, stride, 1], "SAME"), 0.1)
            k = tf.get_variable("flow", [3, 3, 32, 2])
            return tf.reduce_mean(tf.square(tf.nn.conv2d(h, k, [1, 1, 1, 1], "SAME") - y))

        with engine.scope():
            step = tf.train.get_or_create_global_step()
            train_op, loss = engine.build_train_op(loss_fn, tf.train.AdamOptimizer(1e-4), step)
            init = tf.global_variables_initializer()
        with tf.Session(engine.target, config=backend.session_config(dev, engine)) as sess:
            sess.run(init)
            for _ in range(args.warmup):
                sess.run([train_op, loss])
            start = time.perf_counter()
            for _ in range(args.steps):
                sess.run([train_op, loss])
            seconds = time.perf_counter() - start
    return {"rank": engine.rank, "workers": engine.num_workers, "replicas": engine.size, "tf": TF_VERSION,
            "sec_per_step": seconds / args.steps, "global_batch": args.batch * engine.size}


def launch(args: argparse.Namespace, workers: int, batch: int, threads: int) -> dict:
    """Run one configuration in fresh processes; the chief's timing (all workers run in lockstep)."""
    sys.path.insert(0, str(ROOT))
    from pwcflow.device import distribute

    ports = ",".join(str(p) for p in distribute.free_ports(workers)) if workers > 1 else ""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    common = [sys.executable, __file__, "--worker", "--steps", str(args.steps), "--warmup", str(args.warmup),
              "--batch", str(batch), "--size", str(args.size), "--threads", str(threads), "--ports", ports]
    procs = [subprocess.Popen(common + ["--rank", str(r)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(workers)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit("worker failed:\n" + err[-3000:])
        results.append(json.loads(out.strip().splitlines()[-1]))
    chief = results[0]
    chief["samples_per_sec"] = chief["global_batch"] / chief["sec_per_step"]
    chief["threads_per_worker"] = threads
    return chief


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="per replica")
    parser.add_argument("--size", type=int, default=64, help="image side (pixels)")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = TF default)")
    parser.add_argument("--ports", default="")
    parser.add_argument("--rank", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    cores = os.cpu_count() or 1
    runs = [("1 process, batch %d" % args.batch, launch(args, 1, args.batch, 0)),
            ("1 process, batch %d" % (2 * args.batch), launch(args, 1, 2 * args.batch, 0)),
            ("2 workers x batch %d" % args.batch, launch(args, 2, args.batch, max(1, cores // 2)))]
    print("%-24s %8s %12s %12s" % ("run", "global", "sec/step", "samples/s"))
    for name, r in runs:
        print("%-24s %8d %12.4f %12.1f" % (name, r["global_batch"], r["sec_per_step"], r["samples_per_sec"]))
    base = runs[1][1]["samples_per_sec"]
    print("2 workers vs 1 process at the same global batch: %.2fx (%d CPU cores shared by both workers)"
          % (runs[2][1]["samples_per_sec"] / base, cores))
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ("bench_distribute-tf%s.json" % runs[0][1]["tf"])
    path.write_text(json.dumps({"host": platform.node(), "cpu_cores": cores, "image_size": args.size,
                                "steps": args.steps, "warmup": args.warmup,
                                "runs": {name: r for name, r in runs}}, indent=2))
    print("wrote %s" % path)


if __name__ == "__main__":
    main()

"""Exported PWC-Net per format and runtime beside the TF session: latency and peak memory, CPU, 448x1024, batch 1.

Exports the checkpoint (default: tfoptflow's lg-6-2 from ``shared/tfoptflow-ref``, else random weights) with
``python -m pwcflow.export`` as ``pb``, ``onnx`` and ``tflite`` (each export checks itself; its max px
difference from the session is reported), then runs each runtime in a fresh process: TF session on the
checkpoint, TF on the frozen pb, onnxruntime on the .onnx, the TFLite interpreter on the .tflite. Per runtime:
load time, first call, median latency of ``--runs`` calls, peak RSS of the process, and the max difference of its
flow from the session's on the same synthetic pair. Prints a Markdown table and saves
``benchmarks/results/bench_export.json``. Children run one after another, so load drift on a shared machine is not
cancelled: the load average before and after is recorded beside the figures.

    python benchmarks/bench_export.py [--model lg-6-2] [--runs 5] [--formats pb,onnx,tflite]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import common
import numpy as np

H, W = 448, 1024
FILE_OF = {"tf-pb": "pb", "onnxruntime": "onnx", "tflite": "tflite"}


def child(args: argparse.Namespace) -> Dict[str, object]:
    """One runtime in this fresh process: load, first call, timed calls, peak RSS, flow saved for comparison."""
    from pwcflow.deploy import exported

    x = exported.sample_input([1, 2, H, W, 3])
    t0 = time.perf_counter()
    if args.child == "tf-session":
        from pwcflow.inference.predictor import FlowPredictor

        p = FlowPredictor(common.variant_spec(args.model, "fused"), args.file, input_shape=x.shape)

        def run():
            return p.sess.run(p.flow, {p.x: x})
    elif args.child == "tf-pb":
        from pwcflow.tf1 import tf

        graph_def = tf.GraphDef()
        with open(args.file, "rb") as fh:
            graph_def.ParseFromString(fh.read())
        g = tf.Graph()
        with g.as_default():
            tf.import_graph_def(graph_def, name="")
        sess = tf.Session(graph=g)

        def run():
            return sess.run("flow_pred:0", {"x_tnsr:0": x})
    else:
        model = exported.load(args.file, probe=False)

        def run():
            return model.run(x)
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    flow = run()
    first_s = time.perf_counter() - t0
    times = common.interleaved({"run": run}, args.runs, warmup=0)["run"]
    np.save(args.out, flow)
    return {"load_s": load_s, "first_s": first_s, "median_s": common.median(times["wall"]),
            "cpu_s": common.median(times["cpu"]), "peak_rss_mib": common.peak_rss_mib(),
            "tf_imported": "tensorflow" in sys.modules}


def export(ckpt: str, model: str, fmt: str, out: str) -> dict:
    """``python -m pwcflow.export`` at 448x1024 batch 1 (kept if ``out`` has it); returns its JSON sidecar."""
    stem = "pwcnet_%s_1x%dx%d" % (model, H, W)
    sidecar = os.path.join(out, stem + "." + fmt + ".json")  # formats.sidecar: <file>.json
    if os.path.exists(sidecar):
        info = json.loads(open(sidecar).read())
        info["size_mib"] = os.path.getsize(info["path"]) / 2.0 ** 20
        return info
    env = dict(os.environ, PYTHONPATH=str(common.ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pwcflow.export", "ckpt=" + ckpt, "model=" + model, "format=" + fmt,
           "batch=1", "height=%d" % H, "width=%d" % W, "out=" + out]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        return {"error": (proc.stderr.strip().splitlines() or ["exit %d" % proc.returncode])[-1]}
    info = json.loads(open(sidecar).read())
    info["export_s"] = time.perf_counter() - t0
    info["size_mib"] = os.path.getsize(info["path"]) / 2.0 ** 20
    return info


def checkpoint(model: str, folder: str) -> str:
    """tfoptflow's reference checkpoint for ``model`` if present, else a random-weight one in ``folder``."""
    ref = os.path.join(os.environ.get("PWCFLOW_TFOPTFLOW_REF", str(common.ROOT.parent / "shared" / "tfoptflow-ref")),
                       model.split("-")[0])
    if os.path.exists(os.path.join(ref, "pwcnet.ckpt.index")):
        return os.path.join(ref, "pwcnet.ckpt")
    from pwcflow.inference.predictor import FlowPredictor

    p = FlowPredictor(common.variant_spec(model, "fused"), None, seed=0)
    prefix = p.saver.save(p.sess, os.path.join(folder, "pwcnet.ckpt"), write_meta_graph=False)
    p.close()
    return prefix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lg-6-2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--formats", default="pb,onnx,tflite")
    ap.add_argument("--dir", help="folder for the exports (default: a new temporary one); exports there are reused")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    load_before = os.getloadavg()
    tmp = args.dir or tempfile.mkdtemp(prefix="bench_export_")
    os.makedirs(tmp, exist_ok=True)
    ckpt = checkpoint(args.model, tmp)
    exports = {fmt: export(ckpt, args.model, fmt, tmp) for fmt in args.formats.split(",")}
    rows: List[dict] = []
    for name in ["tf-session"] + [r for r, f in FILE_OF.items() if f in exports and "path" in exports[f]]:
        f = ckpt if name == "tf-session" else exports[FILE_OF[name]]["path"]
        out = os.path.join(tmp, name + ".npy")
        r = common.run_json([__file__, "--child", name, "--file", f, "--out", out, "--model", args.model,
                             "--runs", str(args.runs)])
        r["runtime"], r["flow"] = name, np.load(out)
        rows.append(r)
    for r in rows:
        r["diff_vs_session_px"] = float(np.abs(r.pop("flow") - rows[0]["flow"]).max()) if r is not rows[0] else 0.0
    rows[0].pop("flow")
    payload = {"machine": common.machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
               "model": args.model, "size": [H, W], "batch": 1, "runs": args.runs, "exports": exports, "rows": rows}
    common.write_json("bench_export", payload)
    print(common.table(
        ["runtime", "median ms", "cpu s", "first ms", "load s", "peak RSS MiB", "max diff px", "TF imported"],
        [[r["runtime"], "%.0f" % (1e3 * r["median_s"]), "%.2f" % r["cpu_s"], "%.0f" % (1e3 * r["first_s"]),
          "%.1f" % r["load_s"], "%.0f" % r["peak_rss_mib"], "%.1e" % r["diff_vs_session_px"], r["tf_imported"]]
         for r in rows]))
    print(common.table(["export", "file MiB", "export s", "self-check max diff px"],
                       [[f, "%.1f" % e.get("size_mib", 0), "%.0f" % e.get("export_s", 0),
                         "%.1e" % e["max_diff_px"] if "max_diff_px" in e else e.get("error")]
                        for f, e in exports.items()]))
    print("load average before %s, after %s (2 cores shared with other jobs)" %
          (" ".join("%.2f" % v for v in load_before), " ".join("%.2f" % v for v in os.getloadavg())))


if __name__ == "__main__":
    main()

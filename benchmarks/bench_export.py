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
    python benchmarks/bench_export.py --int8 [--model lg-6-2] [--runs 5]   # int8 vs fp32 ONNX vs TF, one process
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


def export(ckpt: str, model: str, fmt: str, out: str, int8: bool = False) -> dict:
    """``python -m pwcflow.export`` at 448x1024 batch 1 (kept if ``out`` has it); returns its JSON sidecar."""
    stem = "pwcnet_%s_1x%dx%d" % (model, H, W) + ("_int8" if int8 else "")
    sidecar = os.path.join(out, stem + "." + fmt + ".json")  # formats.sidecar: <file>.json
    if os.path.exists(sidecar):
        info = json.loads(open(sidecar).read())
        info["size_mib"] = os.path.getsize(info["path"]) / 2.0 ** 20
        return info
    env = dict(os.environ, PYTHONPATH=str(common.ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "pwcflow.export", "ckpt=" + ckpt, "model=" + model, "format=" + fmt,
           "batch=1", "height=%d" % H, "width=%d" % W, "out=" + out] + (["int8=true"] if int8 else [])
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


def int8_side_by_side(args: argparse.Namespace, ckpt: str, tmp: str, load_before: float) -> None:
    """Export fp32 and int8 ONNX, then time the TF session (pwcflow's default graph), onnxruntime fp32 and int8
    in interleaved rounds in this one process (and, where the CPU has bfloat16 units, the TF session with
    ``device.precision=bf16``); the int8 export's own EPE check is reported beside them."""
    from pwcflow.deploy import exported
    from pwcflow.device import precision
    from pwcflow.inference.predictor import FlowPredictor

    exports = {"onnx-fp32": export(ckpt, args.model, "onnx", tmp), "onnx-int8": export(ckpt, args.model, "onnx", tmp,
                                                                                       int8=True)}
    for name, e in exports.items():
        if "path" not in e:
            raise SystemExit("error: %s export failed: %s" % (name, e.get("error")))
    x = exported.sample_input([1, 2, H, W, 3])
    p = FlowPredictor(common.variant_spec(args.model, "fused"), ckpt, input_shape=x.shape)
    models = {k: exported.load(e["path"], probe=False) for k, e in exports.items()}
    fns = {"tf-session": lambda: p.sess.run(p.flow, {p.x: x})}
    fns.update({k: (lambda m=m: m.run(x)) for k, m in models.items()})
    ratios = {"onnx_int8_over_onnx_fp32": ("onnx-fp32", "onnx-int8"), "onnx_int8_over_tf_session": ("tf-session",
                                                                                                  "onnx-int8"),
              "onnx_fp32_over_tf_session": ("tf-session", "onnx-fp32"),
              "onnx_int8_over_onnx_fp32_cpu": ("onnx-fp32 cpu", "onnx-int8 cpu")}
    bf16 = None
    if precision.bf16_unit() is not None:
        bf16 = FlowPredictor(common.variant_spec(args.model, "fused"), ckpt, input_shape=x.shape,
                             bf16_fp32=common.bf16_keep())
        fns["tf-session-bf16"] = lambda: bf16.sess.run(bf16.flow, {bf16.x: x})
        ratios.update({"tf_session_bf16_over_onnx_int8": ("onnx-int8", "tf-session-bf16"),
                       "tf_session_bf16_over_tf_session": ("tf-session", "tf-session-bf16")})
    flows = {k: fn() for k, fn in fns.items()}
    t = common.interleaved(fns, args.runs)
    p.close()
    if bf16 is not None:
        bf16.close()
    int8 = exports["onnx-int8"]
    print(common.table(["runtime", "median s", "CPU s", "max diff vs session px"],
                       [[k, "%.3f" % common.median(v["wall"]), "%.2f" % common.median(v["cpu"]),
                         "%.3f" % float(np.abs(flows[k] - flows["tf-session"]).max())] for k, v in t.items()]))
    print("int8 export check: EPE %.4f px vs session %.4f px on generated pairs (change %+.4f, tolerance %g)"
          % (int8["epe_int8_px"], int8["epe_session_px"], int8["epe_change_px"], int8["tolerance_epe_px"]))
    rows = {k: v["wall"] for k, v in t.items()}
    rows.update({k + " cpu": v["cpu"] for k, v in t.items()})
    print("saved %s" % common.record_run(
        args.json or "amx_export_int8_" + args.model, "python benchmarks/bench_export.py " + " ".join(sys.argv[1:]),
        rows, ratios, load_before,
        extra={"onnxruntime": models["onnx-int8"].runtime, "int8_check": {
            k: int8[k] for k in ("epe_int8_px", "epe_session_px", "epe_change_px", "tolerance_epe_px", "max_diff_px",
                                 "check_input", "int8_quantized_nodes", "int8_quantized_concats", "int8_float_nodes")},
            "model": args.model, "size": [H, W], "batch": 1}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lg-6-2")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--formats", default="pb,onnx,tflite")
    ap.add_argument("--dir", help="folder for the exports (default: a new temporary one); exports there are reused")
    ap.add_argument("--int8", action="store_true", help="int8 ONNX vs fp32 ONNX vs the TF session, side by side in "
                    "this process (interleaved rounds; figures JSON benchmarks/results/amx_export_int8_MODEL.json)")
    ap.add_argument("--json", help="with --int8: the figures JSON's name instead (benchmarks/results/NAME.json)")
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
    if args.int8:
        return int8_side_by_side(args, ckpt, tmp, load_before[0])
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

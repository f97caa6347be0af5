"""``device.precision=bf16`` against fp32 on this CPU: forward speed, and what it does to the flows.

    python benchmarks/bench_bf16.py [--models lg-6-2 sm-6-2] [--rounds 3] [--keep PATTERN ...] [--json NAME]

Three graphs of each model: fp32, ``bf16`` (the default ``device.bf16_fp32_layers`` keep-list, or ``--keep``)
and ``bf16-all`` (every layer in bfloat16, keep-list []). Speed: forward on a Sintel-size pair padded to
448x1024, batch 1, interleaved rounds, beside the same process's float32 and bfloat16 matmul peaks (4096^3).
Kernels: ``ONEDNN_VERBOSE=1`` on one warm forward of each graph (a child process each): oneDNN primitives run,
by kind (convolution, matmul, reorder = layout conversion, ...), and their summed milliseconds. Accuracy: the
flows of the tfoptflow reference pairs (``shared/tfoptflow-ref``: its checkpoint, pair a 436x1024 and pair b
120x200, true flow u=3, v=2) and the EPE of ``pwcflow.eval.evaluate`` on a generated Sintel-layout fixture
(the tests' ``layouts.make_sintel``): max |bf16 - fp32| (px) and the EPE change (target <= 0.01 px).
``--search`` first tries each keep-list of ``CANDIDATES`` alone on the fixture (EPE change and the float32 share
of the convolutions' multiply-adds): how the default list was chosen (``--search --rounds 0``: only that, written
to ``benchmarks/accuracy/NAME.json`` with ``--json NAME``). Refused
with one ``error:`` line on a CPU without bfloat16 units or a TensorFlow without oneDNN.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import numpy as np

REF = Path(os.environ.get("PWCFLOW_TFOPTFLOW_REF", common.ROOT.parent / "shared" / "tfoptflow-ref"))


def variants(keep) -> dict:
    """Graph name -> float32 keep-list (None: the fp32 graph)."""
    return {"fp32": None, "bf16": tuple(keep), "bf16-all": ()}


def predictors(model: str, ckpt: str, keep, shape=None):
    """The ``variants`` of ``model`` (default formulation) as ``FlowPredictor``s restored from ``ckpt``."""
    from pwcflow.inference.predictor import FlowPredictor

    spec = common.variant_spec(model, "auto")
    return {p: FlowPredictor(spec, ckpt, common.session_config(), input_shape=shape, bf16_fp32=k)
            for p, k in variants(keep).items()}


def onednn_kernels(model: str, keep) -> dict:
    """Per graph: oneDNN primitives executed in one warm forward (ONEDNN_VERBOSE=1 in a child), by kind."""
    out = {}
    for name, k in variants(keep).items():
        env = dict(os.environ, ONEDNN_VERBOSE="1")
        cmd = [sys.executable, __file__, "--kernels-child", model, json.dumps(k)]
        text = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, check=True).stdout
        counts, ms = collections.Counter(), collections.Counter()
        for line in text.split("=====warm=====", 1)[-1].splitlines():
            f = line.split(",")
            if line.startswith("onednn_verbose") and len(f) > 6 and f[2:5] == ["primitive", "exec", "cpu"]:
                kind = f[5]  # onednn_verbose,v1,primitive,exec,cpu,<kind>,<impl>,...,<ms>
                counts[kind] += 1
                ms[kind] += float(f[-1])
        out[name] = {kind: {"count": counts[kind], "ms": round(ms[kind], 2)} for kind in sorted(counts)}
    return out


def kernels_child(model: str, keep_json: str) -> None:
    """One cold then one warm forward of ``model`` (random weights) built with ``keep_json``; marks the warm one."""
    import bench_forward

    from pwcflow.inference.predictor import FlowPredictor

    keep = json.loads(keep_json)
    p = FlowPredictor(common.variant_spec(model, "auto"), None, common.session_config(), seed=0,
                      bf16_fp32=keep)
    x = bench_forward.inputs(1)
    p.sess.run(p.flow, {p.x: x})
    print("=====warm=====", flush=True)
    p.sess.run(p.flow, {p.x: x})
    sys.stdout.flush()


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean end-point error (px)."""
    return float(np.sqrt(((flow - gt) ** 2).sum(-1)).mean())


def accuracy_rows(model: str, data: str, flows: dict, epes: dict, extra=None) -> list:
    """One row per bf16 graph: max |bf16 - fp32| px on ``flows`` and the EPE change of ``epes``."""
    return [dict({"model": model, "data": data, "graph": g, "max_px": float(np.abs(flows[g] - flows["fp32"]).max()),
                  "epe_fp32": float(epes["fp32"]), "epe_bf16": float(epes[g])}, **(extra or {}))
            for g in flows if g != "fp32"]


def reference_pairs(model: str, preds) -> list:
    """Max |bf16 - fp32| and EPE (vs the true u=3, v=2) on the tfoptflow reference pairs a and b."""
    from pwcflow.data import flowio

    rows = []
    for pair in ("a", "b"):
        imgs = [flowio.read_image(str(REF / model[:2] / ("pair_%s_img%d.png" % (pair, i)))) for i in (1, 2)]
        flows = {p: pr.predict(*imgs) for p, pr in preds.items()}
        gt = np.broadcast_to(np.array([3.0, 2.0], np.float32), flows["fp32"].shape)
        tfo = np.load(str(REF / model[:2] / ("pair_%s_flow.npy" % pair)))
        rows += accuracy_rows(model, "tfoptflow ref pair %s %dx%d" % ((pair,) + imgs[0].shape[:2]), flows,
                              {p: epe(f, gt) for p, f in flows.items()},
                              {"fp32_vs_tfoptflow_px": float(np.abs(flows["fp32"] - tfo).max())})
    return rows


def fixture(folder: str) -> list:
    """The eval fixture: 4 generated Sintel-layout pairs (218x512, clean pass) written under ``folder``."""
    import layouts

    from pwcflow.data.datasets import DatasetSpec, build

    layouts.make_sintel(folder, scenes=("alley_1", "bamboo_2"), frames=3, size=(218, 512), passes=("clean",),
                        with_test=False)
    return build(DatasetSpec("sintel_clean", "sintel", root=folder, passes=("clean",)), "all")


def eval_fixture(model: str, preds, samples: list) -> list:
    """All-pixel EPE of ``pwcflow.eval.evaluate`` on the ``fixture`` (the target's data)."""
    from pwcflow.eval import Options, evaluate

    opts = Options(batch=1, workers=1, sheet_pairs=0, progress=False)
    got = {p: evaluate(pr, samples, opts, passes=("clean",)).metrics.total.mean() for p, pr in preds.items()}
    flows = {p: pr.predict(*samples[0].load()[:2]) for p, pr in preds.items()}
    return accuracy_rows(model, "eval fixture (%d Sintel-layout pairs, 218x512)" % len(samples), flows, got)


# Keep-lists tried by --search (each alone, then the default): the parts the issue names and the pyramid
CANDIDATES = {"none (bf16-all)": (), "cost volume": ("cost_volume*",), "warp": ("warp*",),
              "up-sampling": ("upsample/*",), "flow heads": ("predict_flow/flow*", "ctxt/dc_conv*7"),
              "context network": ("ctxt/*",), "pyramid level 1": ("featpyr/conv1*",),
              "whole pyramid": ("featpyr/*",)}


def fp32_share(model: str, keep) -> float:
    """Share of the convolutions' multiply-adds (448x1024 forward) that ``keep`` leaves in float32."""
    from pwcflow.device import precision
    from pwcflow.model.pwcnet import pwcnet
    from pwcflow.tf1 import tf

    macs = {"float32": 0, "bfloat16": 0}
    with tf.Graph().as_default() as g, precision.graph(keep):
        pwcnet(tf.placeholder(tf.float32, [1, 2, 448, 1024, 3]), common.variant_spec(model, "auto"))
    for op in g.get_operations():
        if op.type in ("Conv2D", "Conv2DBackpropInput"):
            k = op.inputs[1].shape.as_list()  # [kh, kw, in, out] (transpose: [kh, kw, out, in])
            pixels = op.outputs[0].shape.as_list() if op.type == "Conv2D" else op.inputs[2].shape.as_list()
            macs[op.get_attr("T").name] += int(np.prod(pixels[:3])) * int(np.prod(k))
    return macs["float32"] / float(sum(macs.values()))


def search(models, default, samples: list) -> list:
    """EPE change on the fixture and float32 share of multiply-adds of each ``CANDIDATES`` list and ``default``."""
    from pwcflow.eval import Options, evaluate
    from pwcflow.inference.predictor import FlowPredictor

    opts = Options(batch=1, workers=1, sheet_pairs=0, progress=False)
    rows = []
    for model in models:
        spec, ckpt = common.variant_spec(model, "auto"), str(REF / model[:2] / "pwcnet.ckpt")
        epes = {}
        for name, keep in [("fp32", None)] + list(CANDIDATES.items()) + [("default", tuple(default))]:
            pred = FlowPredictor(spec, ckpt, common.session_config(), bf16_fp32=keep)
            epes[name] = float(evaluate(pred, samples, opts, passes=("clean",)).metrics.total.mean())
            pred.close()
            if keep is not None:
                rows.append({"model": model, "kept in float32": name, "patterns": list(keep),
                             "fp32_macs": fp32_share(model, keep), "epe_change": epes[name] - epes["fp32"]})
                print("%s  %-18s fp32 MACs %5.1f %%  EPE change %+.4f px" % (
                    model, name, 100 * rows[-1]["fp32_macs"], rows[-1]["epe_change"]), flush=True)
    return rows


def search_table(searched: list) -> str:
    return common.table(["model", "kept in float32", "float32 share of multiply-adds", "EPE change (fixture)"],
                        [[r["model"], r["kept in float32"], "%.1f %%" % (100 * r["fp32_macs"]),
                          "%+.4f px" % r["epe_change"]] for r in searched])


def search_only(args: argparse.Namespace, keep) -> None:
    """``--search --rounds 0``: the keep-list search alone; ``--json NAME``: benchmarks/accuracy/NAME.json."""
    with tempfile.TemporaryDirectory() as tmp:
        searched = search(args.models, keep, fixture(tmp))
    print(search_table(searched))
    if args.json:
        out = common.ROOT / "benchmarks" / "accuracy" / (args.json + ".json")
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"command": " ".join(["python"] + sys.argv), "cpu": common.cpu_model(),
                                   "versions": common.versions(), "keep_search": searched}, indent=1) + "\n")
        print(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lg-6-2", "sm-6-2"], choices=["lg-6-2", "sm-6-2"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keep", nargs="*", help="float32 keep-list of the bf16 graph (default: "
                    "device.bf16_fp32_layers of conf/device/cpu.yaml)")
    ap.add_argument("--search", action="store_true", help="first try each CANDIDATES keep-list on the fixture "
                    "(EPE change, float32 share of multiply-adds)")
    ap.add_argument("--json", help="also record the run (common.record_run) at this path, e.g. bf16_xeon")
    ap.add_argument("--kernels-child", nargs=2, metavar=("MODEL", "KEEP_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.kernels_child:
        return kernels_child(*args.kernels_child)
    load_before = common.load1()

    from pwcflow.device import precision
    from pwcflow.errors import UserError

    try:
        keep = tuple(args.keep) if args.keep is not None else common.bf16_keep()
    except UserError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
    if args.rounds == 0:  # accuracy only: the keep-list search (deterministic, so the load does not matter)
        return search_only(args, keep)
    import bench_forward

    cfg = common.session_config()
    info = {"machine": common.machine(), "bf16_unit": precision.bf16_unit(), "keep_fp32": list(keep),
            "peak_before": common.matmul_peak(cfg), "bf16_peak_before": common.matmul_peak(cfg, dtype="bfloat16")}
    speed, accuracy, times, kernels = [], [], {}, {}
    x = bench_forward.inputs(1)
    with tempfile.TemporaryDirectory() as tmp:
        samples = fixture(tmp)
        searched = search(args.models, keep, samples) if args.search else []
        for model in args.models:
            kernels[model] = onednn_kernels(model, keep)
            preds = predictors(model, str(REF / model[:2] / "pwcnet.ckpt"), keep)
            accuracy += reference_pairs(model, preds)
            accuracy += eval_fixture(model, preds, samples)
            fns = {p: (lambda pr=pr: pr.sess.run(pr.flow, {pr.x: x})) for p, pr in preds.items()}
            r = common.interleaved(fns, args.rounds)
            times.update({"%s %s" % (model, p): r[p]["wall"] for p in preds})
            times.update({"%s %s cpu" % (model, p): r[p]["cpu"] for p in preds})
            for g in ("bf16", "bf16-all"):
                speed.append({"model": model, "graph": g, "fp32_s": common.median(r["fp32"]["wall"]),
                              "bf16_s": common.median(r[g]["wall"]),
                              "ratio": common.median(r["fp32"]["wall"]) / common.median(r[g]["wall"]),
                              "loadavg": list(os.getloadavg())})
                print("%s forward b1 448x1024: fp32 %.3f s, %s %.3f s: %.2fx (load %.1f)" % (
                    model, speed[-1]["fp32_s"], g, speed[-1]["bf16_s"], speed[-1]["ratio"], speed[-1]["loadavg"][0]))
            for p in preds.values():
                p.close()
    info["peak_after"] = common.matmul_peak(cfg)
    info["bf16_peak_after"] = common.matmul_peak(cfg, dtype="bfloat16")
    print(common.table(["model", "data", "graph", "max |bf16-fp32| px", "EPE fp32", "EPE bf16", "EPE change"],
                       [[a["model"], a["data"], a["graph"], "%.3f" % a["max_px"], "%.4f" % a["epe_fp32"],
                         "%.4f" % a["epe_bf16"], "%+.4f" % (a["epe_bf16"] - a["epe_fp32"])] for a in accuracy]))
    print(common.table(["model", "graph", "oneDNN primitives in one forward: count (ms)"],
                       [[m, g, ", ".join("%s %d (%.0f)" % (k, v["count"], v["ms"]) for k, v in ks.items())]
                        for m, by_graph in kernels.items() for g, ks in by_graph.items()]))
    peaks = {k: max(info[k + "_before"]["gflops_median"], info[k + "_after"]["gflops_median"])
             for k in ("peak", "bf16_peak")}
    print("matmul peak 4096^3, same process: float32 %.0f GFLOP/s, bfloat16 %.0f GFLOP/s" % (
        peaks["peak"], peaks["bf16_peak"]))
    for row in speed:  # the forward's own rate against the peak of its arithmetic
        macs = common.pwcnet_macs(common.variant_spec(row["model"], "auto"), 448, 1024)["total"]
        pairs = (("fp32", "fp32_s", "peak"),) if row["graph"] == "bf16" else ()
        for g, key, peak in pairs + ((row["graph"], "bf16_s", "bf16_peak"),):
            gf = 2.0 * macs / row[key] / 1e9
            row["%s_gflops" % key[:-2]] = gf
            print("%s %-8s forward: %.0f GFLOP/s = %.0f %% of the %s matmul peak" % (
                row["model"], g, gf, 100.0 * gf / peaks[peak], "float32" if peak == "peak" else "bfloat16"))
    if searched:
        print(search_table(searched))
    print(common.write_json("bf16", {"info": info, "speed": speed, "accuracy": accuracy, "kernels": kernels,
                                     "keep_search": searched}))
    if args.json:
        ratios = {"%s %s%s" % (m, g, c): ("%s fp32%s" % (m, c), "%s %s%s" % (m, g, c)) for m in args.models
                  for g in ("bf16", "bf16-all") for c in ("", " cpu")}
        print(common.record_run(args.json, " ".join(["python"] + sys.argv), times, ratios, load_before,
                                peaks["peak"], {"accuracy": accuracy, "bf16_unit": info["bf16_unit"],
                                                "keep_fp32": list(keep), "bf16_matmul_peak_gflops": peaks["bf16_peak"],
                                                "onednn_kernels": kernels, "keep_search": searched}))


if __name__ == "__main__":
    main()

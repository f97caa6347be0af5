"""``device.precision=bf16`` against fp32 on this CPU: forward speed, and what it does to the flows.

    python benchmarks/bench_bf16.py [--models lg-6-2 sm-6-2] [--rounds 3]

Speed: lg/sm forward on a Sintel-size pair padded to 448x1024, batch 1, fp32 and bf16 sessions of the same
graph in interleaved rounds (ratio = median over rounds of fp32 time / bf16 time). Accuracy: the flows of the
tfoptflow reference pairs (``shared/tfoptflow-ref``: its checkpoint, pair a 436x1024 and pair b 120x200, true
flow u=3, v=2) and the EPE of ``pwcflow.eval.evaluate`` on a generated Sintel-layout fixture (the tests'
``layouts.make_sintel``), fp32 and bf16: max |bf16 - fp32| (px) and the EPE change. Refused with one ``error:``
line on a CPU without bfloat16 units or a TensorFlow without oneDNN.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import common
import numpy as np

REF = Path(os.environ.get("PWCFLOW_TFOPTFLOW_REF", common.ROOT.parent / "shared" / "tfoptflow-ref"))


def predictors(model: str, ckpt: str, shape=None):
    """fp32 and bf16 ``FlowPredictor`` of ``model`` (default formulation) restored from ``ckpt``."""
    from pwcflow.inference.predictor import FlowPredictor

    spec = common.variant_spec(model, "auto")
    return {p: FlowPredictor(spec, ckpt, common.session_config(precision=p), input_shape=shape)
            for p in ("fp32", "bf16")}


def epe(flow: np.ndarray, gt: np.ndarray) -> float:
    """Mean end-point error (px)."""
    return float(np.sqrt(((flow - gt) ** 2).sum(-1)).mean())


def reference_pairs(model: str, preds) -> list:
    """Max |bf16 - fp32| and EPE (vs the true u=3, v=2) of both on the reference pairs a and b."""
    from pwcflow.data import flowio

    rows = []
    for pair in ("a", "b"):
        imgs = [flowio.read_image(str(REF / model[:2] / ("pair_%s_img%d.png" % (pair, i)))) for i in (1, 2)]
        flows = {p: pr.predict(*imgs) for p, pr in preds.items()}
        gt = np.broadcast_to(np.array([3.0, 2.0], np.float32), flows["fp32"].shape)
        tfo = np.load(str(REF / model[:2] / ("pair_%s_flow.npy" % pair)))
        rows.append({"model": model, "data": "tfoptflow ref pair %s %dx%d" % ((pair,) + imgs[0].shape[:2]),
                     "max_px": float(np.abs(flows["bf16"] - flows["fp32"]).max()),
                     "epe_fp32": epe(flows["fp32"], gt), "epe_bf16": epe(flows["bf16"], gt),
                     "fp32_vs_tfoptflow_px": float(np.abs(flows["fp32"] - tfo).max())})
    return rows


def eval_fixture(model: str, preds, folder: str) -> dict:
    """All-pixel EPE of ``pwcflow.eval.evaluate`` on a generated Sintel-layout fixture, fp32 and bf16."""
    import layouts

    from pwcflow.data.datasets import DatasetSpec, build
    from pwcflow.eval import Options, evaluate

    layouts.make_sintel(folder, scenes=("alley_1", "bamboo_2"), frames=3, size=(218, 512), passes=("clean",),
                        with_test=False)
    samples = build(DatasetSpec("sintel_clean", "sintel", root=folder, passes=("clean",)), "all")
    opts = Options(batch=1, workers=1, sheet_pairs=0, progress=False)
    got = {p: evaluate(pr, samples, opts, passes=("clean",)).metrics.total.mean() for p, pr in preds.items()}
    flows = {p: pr.predict(*samples[0].load()[:2]) for p, pr in preds.items()}
    return {"model": model, "data": "eval fixture (%d Sintel-layout pairs, 218x512)" % len(samples),
            "max_px": float(np.abs(flows["bf16"] - flows["fp32"]).max()), "epe_fp32": float(got["fp32"]),
            "epe_bf16": float(got["bf16"]), "fp32_vs_tfoptflow_px": None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["lg-6-2", "sm-6-2"], choices=["lg-6-2", "sm-6-2"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="also record the run (common.record_run) at this path, e.g. bf16_xeon")
    args = ap.parse_args()
    load_before = common.load1()

    from pwcflow.config.compose import compose_group
    from pwcflow.device import precision
    from pwcflow.errors import UserError

    try:
        precision.check(compose_group("device", "cpu", {"precision": "bf16"}))
    except UserError as e:
        print("error: %s" % e, file=sys.stderr)
        sys.exit(1)
    import bench_forward

    info = {"machine": common.machine(), "bf16_unit": precision.bf16_unit(),
            "peak_before": common.matmul_peak(common.session_config())}
    speed, accuracy, times = [], [], {}
    x = bench_forward.inputs(1)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            ckpt = str(REF / model[:2] / "pwcnet.ckpt")
            preds = predictors(model, ckpt)
            accuracy += reference_pairs(model, preds)
            accuracy.append(eval_fixture(model, preds, os.path.join(tmp, model)))
            fns = {p: (lambda pr=pr: pr.sess.run(pr.flow, {pr.x: x})) for p, pr in preds.items()}
            r = common.interleaved(fns, args.rounds)
            times.update({"%s %s" % (model, p): r[p]["wall"] for p in preds})
            times.update({"%s %s cpu" % (model, p): r[p]["cpu"] for p in preds})
            speed.append({"model": model, "fp32_s": common.median(r["fp32"]["wall"]),
                          "bf16_s": common.median(r["bf16"]["wall"]),
                          "ratio": common.paired_ratio(r["fp32"]["wall"], r["bf16"]["wall"]),
                          "loadavg": list(os.getloadavg())})
            print("%s forward b1 448x1024: fp32 %.3f s, bf16 %.3f s: %.2fx (load %.1f)" % (
                model, speed[-1]["fp32_s"], speed[-1]["bf16_s"], speed[-1]["ratio"], speed[-1]["loadavg"][0]))
            for p in preds.values():
                p.close()
    info["peak_after"] = common.matmul_peak(common.session_config())
    print(common.table(["model", "data", "max |bf16-fp32| px", "EPE fp32", "EPE bf16", "EPE change"],
                       [[a["model"], a["data"], "%.3f" % a["max_px"], "%.4f" % a["epe_fp32"], "%.4f" % a["epe_bf16"],
                         "%+.4f" % (a["epe_bf16"] - a["epe_fp32"])] for a in accuracy]))
    print(common.write_json("bf16", {"info": info, "speed": speed, "accuracy": accuracy}))
    if args.json:
        peak = max(info["peak_before"]["gflops_median"], info["peak_after"]["gflops_median"])
        ratios = {"%s bf16%s" % (m, c): ("%s fp32%s" % (m, c), "%s bf16%s" % (m, c)) for m in args.models
                  for c in ("", " cpu")}
        print(common.record_run(args.json, " ".join(["python"] + sys.argv), times, ratios, load_before, peak,
                                {"accuracy": accuracy, "bf16_unit": info["bf16_unit"]}))


if __name__ == "__main__":
    main()

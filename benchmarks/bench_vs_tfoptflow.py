"""pwcflow against unmodified tfoptflow, side by side in one process: forward, PNG pair -> flow, training step.

    python benchmarks/bench_vs_tfoptflow.py --tfoptflow PATH [--models lg-6-2 sm-6-2] [--rounds 3]

PATH is a tfoptflow checkout (github.com/philferriere/tfoptflow; its root or its ``tfoptflow/`` folder) that
the user provides: nothing is downloaded and none of its files is changed (``tfoptflow_import`` says what is
stood in for on TF 2.x). Both restore the same random-weight checkpoint (tfoptflow's variable names) and time
the same inputs in interleaved rounds (tfoptflow, pwcflow, tfoptflow, ...); each ratio is the median over
rounds of tfoptflow's time / pwcflow's (>1: pwcflow faster). pwcflow runs as configured by default
(``model.costvol_impl=auto``: the formulation is chosen for this TensorFlow and device when the graph is built).

Rows: forward (Sintel size padded to 448x1024, batch 1, fetching the full-resolution flow; with ``--bf16`` also
pwcflow in ``device.precision=bf16`` with its default keep-list, in the same rounds: row "... bf16"); PNG pair -> flow
(decode two 436x1024 PNGs and predict, warm process: tfoptflow's ``predict_from_img_pairs`` after reading with
skimage's ``imread``, or OpenCV's when scikit-image is not installed, as in its predict script; pwcflow's
``FlowPredictor.predict`` after ``flowio.read_image``); training step (batch 2, 256x448, multiscale loss + weight
decay, Adam 1e-4: tfoptflow's training fetch in ``fine-tune`` mode, pwcflow's ``bench_train.Step``).
GFLOP/s: the forward's multiply-adds (``common.pwcnet_macs``) x2 / median time; the matmul peak is measured in
the same process before and after. The flows of both are compared (max |diff|, px).
"""

import argparse
import copy
import os
import tempfile
import time
from types import SimpleNamespace
from typing import Dict, List

# before TensorFlow loads: tfoptflow's tf.layers is Keras 2's (the tf_keras package on TF >= 2.16); pwcflow uses
# no Keras, so this changes nothing of its graphs
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import common  # noqa: E402
import numpy as np  # noqa: E402

SIZE, PADDED, CROP, TRAIN_BATCH = (436, 1024), (448, 1024), (256, 448), 2


def tfo_options(tfo, model: str, ckpt: str, **extra) -> dict:
    """tfoptflow's test (or, with ``train=True`` in ``extra``, training) options for lg/sm on the CPU."""
    train = extra.pop("train", False)
    base = tfo._DEFAULT_PWCNET_TRAIN_OPTIONS if train else tfo._DEFAULT_PWCNET_TEST_OPTIONS
    opts = copy.deepcopy(base)
    lg = model.startswith("lg")
    opts.update(verbose=False, ckpt_path=ckpt, batch_size=1, gpu_devices=["/device:CPU:0"],
                controller="/device:CPU:0", use_dense_cx=lg, use_res_cx=lg, pyr_lvls=6, flow_pred_lvl=2,
                search_range=4)
    opts.update(extra)
    return opts


def frames(seed: int = 10):
    """A textured Sintel-size RGB uint8 pair moving by (3, 2) px."""
    import layouts

    (img1, img2), _ = layouts.sequence(SIZE, 2, (3, 2), seed=seed)
    return img1, img2


class Forward:
    """Both forward graphs (dynamic H, W; batch 1) restored from the same checkpoint."""

    def __init__(self, tfo, model: str, ckpt: str, threads: int, bf16_keep=None):
        from pwcflow.inference.predictor import FlowPredictor
        from pwcflow.model.pwcnet import ModelSpec

        self.tfo = tfo.ModelPWCNet(mode="test", options=tfo_options(tfo, model, ckpt))
        lg = model.startswith("lg")
        spec = ModelSpec(name=model, dense=lg, context_all_levels=lg)  # the defaults: formulation "auto"
        self.ours = FlowPredictor(spec, ckpt, common.session_config(threads=threads))
        self.bf16 = None if bf16_keep is None else FlowPredictor(spec, ckpt, common.session_config(threads=threads),
                                                                 bf16_fp32=bf16_keep)
        from pwcflow.inference.predictor import pad_to_multiple, to_input

        img1, img2 = frames()
        self.x = pad_to_multiple(to_input(img1, img2)[None], 64, (2, 3))

    def tfoptflow(self) -> np.ndarray:
        """tfoptflow's full-resolution flow op on the padded pair."""
        return self.tfo.sess.run(self.tfo.flow_pred_tnsr, {self.tfo.x_tnsr: self.x})

    def pwcflow(self) -> np.ndarray:
        """pwcflow's full-resolution flow op on the padded pair."""
        return self.ours.sess.run(self.ours.flow, {self.ours.x: self.x})

    def pwcflow_bf16(self) -> np.ndarray:
        """The same with ``device.precision=bf16`` (the default keep-list)."""
        return self.bf16.sess.run(self.bf16.flow, {self.bf16.x: self.x})

    def png_tfoptflow(self, paths) -> np.ndarray:
        """tfoptflow's predict path: read both PNGs, ``predict_from_img_pairs``."""
        img1, img2 = [_imread(p) for p in paths]
        return self.tfo.predict_from_img_pairs([(img1, img2)], batch_size=1)[0]

    def png_pwcflow(self, paths) -> np.ndarray:
        """pwcflow's predict path: ``flowio.read_image`` both, ``FlowPredictor.predict``."""
        from pwcflow.data import flowio

        return self.ours.predict(*[flowio.read_image(p) for p in paths])

    def close(self) -> None:
        """Release both sessions."""
        self.tfo.sess.close()
        self.ours.close()
        if self.bf16 is not None:
            self.bf16.close()


def _imread(path: str) -> np.ndarray:
    """tfoptflow's reader (skimage's ``imread``), or OpenCV's RGB read when scikit-image is missing."""
    try:
        from skimage.io import imread
    except ImportError:
        import cv2

        return np.ascontiguousarray(cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1])
    return imread(path)


class Train:
    """Both training graphs (batch 2, 256x448, multiscale loss + weight decay, Adam 1e-4) on one fixed batch."""

    def __init__(self, tfo, model: str, ckpt: str, threads: int, folder: str):
        import bench_train

        img1, img2 = frames()
        x = np.stack([np.stack([img1, img2])[:, :CROP[0], :CROP[1]]] * TRAIN_BATCH).astype(np.float32) / 255.0
        y = np.zeros((TRAIN_BATCH,) + CROP + (2,), np.float32)
        y[..., 0], y[..., 1] = 3.0, 2.0
        opts = tfo_options(tfo, model, ckpt, train=True, train_mode="fine-tune", batch_size=TRAIN_BATCH,
                           x_shape=[2, CROP[0], CROP[1], 3], y_shape=[CROP[0], CROP[1], 2], adapt_info=None,
                           ckpt_dir=os.path.join(folder, "tfo-" + model) + os.sep)
        self.tfo = tfo.ModelPWCNet(mode="train_noval", options=opts)
        self.tfo.sess.run(self.tfo.g_step_op.assign(0))  # as tfoptflow's train() does in fine-tune mode
        self.feed = {self.tfo.x_tnsr: x, self.tfo.y_tnsr: y}
        args = SimpleNamespace(model=model, loss="multiscale", optimizer="adam", device="cpu", threads=threads,
                               xla=False)
        self.ours = bench_train.Step(args, "auto", ckpt, batch=(x, y, np.ones(y.shape[:3], np.float32)))

    def tfoptflow(self) -> None:
        """tfoptflow's training fetch ``[loss, metric, optim]``."""
        self.tfo.sess.run(self.tfo.y_hat_train_tnsr, self.feed)

    def pwcflow(self) -> None:
        """pwcflow's update."""
        self.ours.run()

    def close(self) -> None:
        """Release both sessions."""
        self.tfo.sess.close()
        self.ours.close()


def rows_for(tfo, model: str, ckpt: str, args: argparse.Namespace, folder: str) -> List[dict]:
    """The forward, PNG and training rows of one model."""
    from pwcflow.data import flowio

    img1, img2 = frames()
    paths = [os.path.join(folder, "frame_%d.png" % i) for i in (1, 2)]  # the PNG row's input
    for p, img in zip(paths, (img1, img2)):
        flowio.write_image(p, img)
    macs = common.pwcnet_macs(common.variant_spec(model, "reference"), *PADDED)["total"]
    out = []
    if "forward" in args.rows:
        out += _forward_rows(tfo, model, ckpt, args, paths, macs)
    if "train" in args.rows:
        out += _train_rows(tfo, model, ckpt, args, folder)
    return out


def _forward_rows(tfo, model: str, ckpt: str, args: argparse.Namespace, paths, macs) -> List[dict]:
    fwd = Forward(tfo, model, ckpt, args.threads, args.bf16_keep)
    out = []
    fns = {"tfoptflow": fwd.tfoptflow, "pwcflow": fwd.pwcflow}
    if fwd.bf16 is not None:
        fns["pwcflow bf16"] = fwd.pwcflow_bf16
    r = common.interleaved(fns, args.rounds)
    diff = float(np.abs(fwd.tfoptflow() - fwd.pwcflow()).max())
    out.append(_row(model, "forward b1 448x1024", r, diff, macs))
    if fwd.bf16 is not None:  # the same rounds, pwcflow bf16 in pwcflow's place
        bf = dict(r, pwcflow=r["pwcflow bf16"])
        diff = float(np.abs(fwd.tfoptflow() - fwd.pwcflow_bf16()).max())
        out.append(_row(model, "forward b1 448x1024 bf16", bf, diff, macs))
    r = common.interleaved({"tfoptflow": lambda: fwd.png_tfoptflow(paths),
                            "pwcflow": lambda: fwd.png_pwcflow(paths)}, args.rounds)
    diff = float(np.abs(fwd.png_tfoptflow(paths) - fwd.png_pwcflow(paths)).max())
    out.append(_row(model, "PNG pair -> flow", r, diff, macs))
    fwd.close()
    return out


def _train_rows(tfo, model: str, ckpt: str, args: argparse.Namespace, folder: str) -> List[dict]:
    try:
        step = Train(tfo, model, ckpt, args.threads, folder)
    except Exception as e:  # noqa: BLE001 - report and go on: the other rows still stand
        print("%s training step: not measured: %s: %s" % (model, type(e).__name__, str(e).splitlines()[0]))
        return []
    r = common.interleaved({"tfoptflow": step.tfoptflow, "pwcflow": step.pwcflow}, args.rounds)
    step.close()
    return [_row(model, "training step b%d %dx%d" % ((TRAIN_BATCH,) + CROP), r, None, None)]


def _row(model: str, what: str, r: Dict[str, dict], diff, macs) -> dict:
    t, p = r["tfoptflow"]["wall"], r["pwcflow"]["wall"]
    row = {"model": model, "row": what, "tfoptflow_s": common.median(t), "pwcflow_s": common.median(p),
           "ratio": common.median(t) / common.median(p), "ratio_paired": common.paired_ratio(t, p),
           "ratio_text": common.speedup_text(t, p), "max_diff_px": diff, "loadavg": list(os.getloadavg()),
           "tfoptflow_runs_s": t, "pwcflow_runs_s": p}
    if macs:
        row["tfoptflow_gflops"] = 2.0 * macs / row["tfoptflow_s"] / 1e9
        row["pwcflow_gflops"] = 2.0 * macs / row["pwcflow_s"] / 1e9
    print("%s %-24s tfoptflow %.3f s  pwcflow %.3f s  ratio %s  max diff %s  load %.1f" % (
        model, what, row["tfoptflow_s"], row["pwcflow_s"], row["ratio_text"],
        "-" if diff is None else "%.1e px" % diff, row["loadavg"][0]), flush=True)
    return row


def markdown(info: dict, rows: List[dict]) -> str:
    """The result as a Markdown table (one leg)."""
    m = info["machine"]
    head = "%s, %d cores, TF %s, Python %s; matmul peak %.0f / %.0f GFLOP/s (before / after); load %s" % (
        m["cpu"], m["cores"], m["tensorflow"], m["python"], info["peak_before"]["gflops_median"],
        info["peak_after"]["gflops_median"], " / ".join("%.1f" % x for x in m["loadavg"]))
    body = []
    for r in rows:
        gf = ("%.0f / %.0f" % (r["tfoptflow_gflops"], r["pwcflow_gflops"])) if "pwcflow_gflops" in r else "-"
        body.append([r["model"], r["row"], "%.3f" % r["tfoptflow_s"], "%.3f" % r["pwcflow_s"],
                     "**%s**" % r["ratio_text"], gf, "-" if r["max_diff_px"] is None else "%.1e" % r["max_diff_px"],
                     "%.1f" % r["loadavg"][0]])
    return head + "\n\n" + common.table(["model", "row", "tfoptflow s", "pwcflow s", "ratio", "GFLOP/s t / p",
                                         "max diff px", "load"], body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tfoptflow", required=True, help="a tfoptflow checkout (its root or its tfoptflow/ folder)")
    ap.add_argument("--models", nargs="+", default=["lg-6-2", "sm-6-2"], choices=["lg-6-2", "sm-6-2"])
    ap.add_argument("--rounds", type=int, default=3, help="timed interleaved rounds per row (after 1 warm-up)")
    ap.add_argument("--threads", type=int, default=0, help="pwcflow's intra/inter-op threads (0: TF default, "
                    "as tfoptflow's own session)")
    ap.add_argument("--rows", nargs="+", default=["forward", "train"], choices=["forward", "train"],
                    help="forward: forward and PNG -> flow rows; train: the training-step rows")
    ap.add_argument("--bf16", action="store_true", help="the forward row also times pwcflow with "
                    "device.precision=bf16 (default keep-list) in the same rounds")
    ap.add_argument("--json", help="also record the run (common.record_run) at this path, e.g. vs_tfoptflow_tf2")
    args = ap.parse_args()
    load_before = common.load1()
    import tfoptflow_import

    from pwcflow.model import tuning

    tfo, shims = tfoptflow_import.load(args.tfoptflow)
    args.bf16_keep = common.bf16_keep() if args.bf16 else None
    command = "python benchmarks/bench_vs_tfoptflow.py --tfoptflow PATH --models %s --rounds %d --rows %s%s" % (
        " ".join(args.models), args.rounds, " ".join(args.rows), " --bf16" if args.bf16 else "")
    info = {"machine": common.machine(), "shims": shims, "formulation": tuning.describe_auto(),
            "peak_before": common.matmul_peak(common.session_config(threads=args.threads)), "command": command}
    print("tfoptflow from %s; stood in for: %s" % (tfoptflow_import.source_dir(args.tfoptflow),
                                                    "; ".join(shims) or "nothing"))
    print("pwcflow formulation: %s" % info["formulation"], flush=True)
    t0, rows = time.time(), []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            ckpt = common.save_random_weights(model, tmp)
            rows += rows_for(tfo, model, ckpt, args, tmp)
    info["peak_after"] = common.matmul_peak(common.session_config(threads=args.threads))
    info["machine"]["loadavg_after"] = list(os.getloadavg())
    info["seconds"] = time.time() - t0
    path = common.write_json("vs_tfoptflow_tf%s_%s" % (info["machine"]["tensorflow"], "_".join(args.rows)),
                             {"info": info, "rows": rows})
    print(markdown(info, rows))
    print("wrote", path)
    if args.json:
        times, ratios = {}, {}
        for r in rows:
            name = "%s %s" % (r["model"], r["row"])
            if name.endswith(" bf16"):  # its tfoptflow times are the fp32 row's (same rounds)
                times[name + " pwcflow"] = r["pwcflow_runs_s"]
                ratios[name] = (name[:-5] + " tfoptflow", name + " pwcflow")
                ratios[name + " vs pwcflow fp32"] = (name[:-5] + " pwcflow", name + " pwcflow")
                continue
            times.update({name + " tfoptflow": r["tfoptflow_runs_s"], name + " pwcflow": r["pwcflow_runs_s"]})
            ratios[name] = (name + " tfoptflow", name + " pwcflow")
        peak = max(info["peak_before"]["gflops_median"], info["peak_after"]["gflops_median"])
        print(common.record_run(args.json, info["command"], times, ratios, load_before, peak,
                                {"shims": info["shims"], "formulation": info["formulation"]}))


if __name__ == "__main__":
    main()

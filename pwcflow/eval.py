"""``python -m pwcflow.eval ckpt=PATH dataset=sintel_clean [dataset.root=DIR] [split=...]``.

Runs the model over a data set split with tfoptflow's test-time processing (``FlowPredictor``:
zero-pad to a multiple of 64 at the bottom/right, crop back) and writes into the run dir
(``outputs/eval/<timestamp>`` unless ``out=``):

- ``metrics.json`` / ``metrics.md``: all-pixel EPE (``epe``), per-scene EPE, s0-10/s10-40/s40+ EPE,
  1/3/5 px outlier rates, ``pairs``, and what was evaluated (``ckpt``, ``dataset``, ``split``,
  ``split_role``: ``training-data``, ``held-out`` or ``test``);
- ``tb/``: the same scalars for TensorBoard (step = the checkpoint's step);
- ``contact_sheet.png`` + ``index.html``: a few pairs spread over the split, to look at;
- ``pictures/<name>_flow.png`` and ``_error.png`` per pair with ``pictures=true`` (``pictures_max``);
- ``flow/<name>.flo`` per pair for ``split=test`` (or ``flo=true``): with ``dataset=sintel_test`` this is
  ``flow/<pass>/<scene>/frame_XXXX.flo`` for both passes, the layout Sintel's submission bundler reads
  (``bundler=PATH`` runs it into ``sintel_submission.lzma``; without it the command is printed);
- with ``dataset=kitti2015_test`` / ``kitti2012_test``: ``submission/flow/NNNNNN_10.png`` (KITTI 16-bit PNG)
  and ``<dataset>_submission.zip``, ready to upload.

Besides EPE, ``metrics.json`` holds KITTI's ``fl_all`` and, when the Sintel root has ``training/occlusions/``,
``epe_matched`` / ``epe_unmatched``.
"""

import logging
import os
import shlex
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from pwcflow import cli
from pwcflow.config import commands
from pwcflow.data import datasets, flowio, pipeline
from pwcflow.data.datasets import DatasetSpec, Sample
from pwcflow.errors import UserError
from pwcflow.evaluation import report, submission
from pwcflow.evaluation.metrics import FlowMetrics
from pwcflow.files import atomic, preflight, tensorboard
from pwcflow.files.checkpoint import step_of  # noqa: F401 (re-exported: the one owner is checkpoint)
from pwcflow.inference import prefetch, scale
from pwcflow.inference.predictor import FlowPredictor, open_predictor
from pwcflow.storage import cache

log = logging.getLogger("pwcflow.eval")

ROLES = {"train": "training-data", "all": "training-data", "val": "held-out", "test": "test"}


@dataclass
class Options:
    """What ``evaluate`` does besides computing metrics."""

    batch: int = 1
    workers: int = 2
    flo_dir: Optional[str] = None  # write <flo_dir>/<name>.flo per pair
    pictures_dir: Optional[str] = None  # write <pictures_dir>/<name>_{flow,error}.png
    pictures_max: int = 20  # 0 = every pair
    sheet_pairs: int = 8  # rows in the contact sheet
    max_flow: Optional[float] = None  # colour-wheel scale (px); None = per pair
    progress: bool = True
    flow_format: str = "flo"  # a flowio.FLOW_FORMATS key: "flo" (<name>.flo) or "png16" (<name>.png, KITTI 16-bit)
    occlusions: Optional[Callable[[str], Optional[np.ndarray]]] = None  # name -> occluded mask (Sintel)
    max_side: Optional[int] = None  # also predict at a reduced size: Outcome.reduced, beside the full-size metrics
    overlap: bool = True  # metrics, files and pictures on a writer thread beside the forward (False: inline)


@dataclass
class Outcome:
    """``evaluate``'s result: the metrics, the contact sheet rows and what it wrote."""

    metrics: FlowMetrics
    sheet: report.ContactSheet
    pictures: List[str] = field(default_factory=list)
    flo_files: int = 0
    pairs_done: int = 0
    picture_pairs: int = 0
    seconds: float = 0.0
    first_batch_seconds: float = 0.0
    reduced: Optional[FlowMetrics] = None  # the metrics at max_side


def scene_key(sample: Sample, passes: Sequence[str]) -> str:
    """Per-scene group of a sample: its scene, prefixed by its pass when the data set has several passes."""
    if len(passes) > 1:
        for part in sample.name.split("/"):
            if part in passes:
                return "%s/%s" % (part, sample.scene)
    return sample.scene


def evaluate(predictor: FlowPredictor, samples: Sequence[Sample], opts: Options, needs_gt: bool = True,
             passes: Sequence[str] = ("clean",)) -> Outcome:
    """Predict every pair, accumulate metrics for pairs with ground truth, write flows/pictures as asked.

    ``needs_gt``: a pair without ground truth is an error (any split but ``test``).
    """
    by_name = {s.name: s for s in samples}
    sheet_idx = set(np.linspace(0, len(samples) - 1, min(opts.sheet_pairs, len(samples))).round().astype(int))
    sheet_names = {samples[i].name for i in sheet_idx} if opts.sheet_pairs > 0 else set()
    out = Outcome(FlowMetrics(), report.ContactSheet(), reduced=FlowMetrics() if opts.max_side else None)
    bar = tqdm(total=len(samples), unit="pair", disable=not opts.progress, dynamic_ncols=True)
    start = time.time()

    def finish(names, x, y, valid, flows, small) -> None:  # metrics, files and pictures: on the writer thread
        for i, name in enumerate(names):
            gt = None if y is None else y[i]
            vi = None if valid is None else valid[i]
            epe = None
            if gt is not None:
                occ = opts.occlusions(name) if opts.occlusions else None
                epe = out.metrics.update_pair(name, scene_key(by_name[name], passes), flows[i], gt, vi, occ)
                if small is not None:
                    out.reduced.update_pair(name, scene_key(by_name[name], passes), small[i], gt, vi, occ)
            if opts.flo_dir:
                _write_flow(opts, name, flows[i])
                out.flo_files += 1
            want_pics = bool(opts.pictures_dir) and (not opts.pictures_max or out.picture_pairs < opts.pictures_max)
            if want_pics or name in sheet_names:
                img1 = (x[i, 0] * 255.0 + 0.5).astype(np.uint8)
                pics = report.panels(img1, flows[i], gt, vi, opts.max_flow)
                if name in sheet_names:
                    out.sheet.add(name, epe, pics)
                if want_pics:
                    out.pictures += _write_pictures(opts.pictures_dir, name, pics)
                    out.picture_pairs += 1
        out.pairs_done += len(names)
        bar.update(len(names))
        if out.metrics.total.n:
            bar.set_postfix(epe="%.3f" % out.metrics.total.mean())

    with prefetch.Writer(prefetch.DEPTH if opts.overlap else 0) as writer:  # decoding: eval_batches' workers
        for names, x, y, valid in pipeline.eval_batches(samples, opts.batch, opts.workers):
            if y is None and needs_gt:
                raise UserError("ground truth missing for pair %s: %s" % (names[0], by_name[names[0]].where))
            flows = predictor.predict_batch(x)
            small = scale.predict_reduced(predictor.predict_batch, x, opts.max_side) if opts.max_side else None
            if not out.first_batch_seconds:
                out.first_batch_seconds = time.time() - start
            writer.submit(finish, names, x, y, valid, flows, small)
    bar.close()
    out.seconds = time.time() - start
    return out


def _write_flow(opts: Options, name: str, flow: np.ndarray) -> None:
    """``<flo_dir>/<name>.flo``, or ``<name>.png`` in KITTI's 16-bit encoding."""
    path = os.path.join(opts.flo_dir, name + flowio.FLOW_FORMATS[opts.flow_format])
    flowio.write_flow(path, flow, opts.flow_format)


def _write_pictures(folder: str, name: str, pics: List[np.ndarray]) -> List[str]:
    """Prediction colour wheel (and error map when there is ground truth) for one pair."""
    files = [(os.path.join(folder, name + "_flow.png"), pics[2] if len(pics) == 4 else pics[1])]
    if len(pics) == 4:
        files.append((os.path.join(folder, name + "_error.png"), pics[3]))
    for path, img in files:
        flowio.write_image(path, img)
    return [path for path, _ in files]


def log_tensorboard(logdir: str, summary: Dict, step: int) -> None:
    """Write the headline scalars (and per-scene EPE) under ``eval/<dataset>/<split>/``."""
    tag = "eval/%s/%s/" % (summary["dataset"], summary["split"])
    values = {"epe": summary["epe"]}
    values.update(("epe_%s" % k, v) for k, v in summary["bands"].items())
    values.update(("outliers_%s" % k, v) for k, v in summary["outliers"].items())
    values.update(("scene/%s" % k, v) for k, v in summary["per_scene"].items())
    values.update((k, summary.get(k)) for k in ("fl_all", "epe_matched", "epe_unmatched"))
    board = tensorboard.Board(logdir)
    board.scalars(step, {tag + k: v for k, v in values.items() if v is not None})
    board.close()


def summarize(outcome: Outcome, ds: DatasetSpec, split: str, model: str, prefix: str) -> Dict:
    """The ``metrics.json`` content: metrics plus what was evaluated and how fast."""
    summary = outcome.metrics.result()
    n = outcome.pairs_done
    summary.update({
        "pairs": n, "pairs_with_gt": summary["pairs"],
        "ckpt": prefix, "model": model, "dataset": ds.name, "kind": ds.kind, "root": ds.root,
        "passes": list(ds.passes), "split": split, "split_role": ROLES[split],
        "fl_gt": ds.gt if ds.kind == "kitti2015" else None,
        "seconds": round(outcome.seconds, 3),
        "pairs_per_second": round(n / outcome.seconds, 3) if outcome.seconds > 0 else None,
    })
    return summary


def _flow_sub(ds: DatasetSpec, split: str) -> str:
    """The flow folder's name in the result folder: KITTI's test split gets its submission layout."""
    return "submission" if ds.kind == "kitti2015" and split == "test" else "flow"


def _options(cfg: commands.EvalConfig, ds: DatasetSpec, split: str, stage: str, flo_dir: Optional[str]) -> Options:
    """``Options`` writing into the staging folder (an explicit ``flo_dir`` is written in place)."""
    write_flo = (split == "test") if cfg.flo is None else cfg.flo
    kitti_test = _flow_sub(ds, split) == "submission"
    return Options(batch=cfg.batch, workers=cfg.workers,
                   flo_dir=(flo_dir or os.path.join(stage, _flow_sub(ds, split))) if write_flo else None,
                   pictures_dir=os.path.join(stage, "pictures") if cfg.pictures else None,
                   pictures_max=cfg.pictures_max, sheet_pairs=cfg.sheet_pairs,
                   max_flow=cfg.max_flow, progress=cfg.progress, flow_format="png16" if kitti_test else "flo",
                   max_side=scale.check_max_side(cfg.max_side),
                   occlusions=submission.sintel_occlusions(ds.root) if ds.kind == "sintel" else None)


RESULT_FILES = ("metrics.json", "metrics.md", "contact_sheet.png", "index.html")  # what _write_results writes


def _write_results(folder: str, summary: Dict, outcome: Outcome, prefix: str) -> None:
    """metrics.json/.md, tb/, contact sheet and index.html into ``folder`` (the staging folder)."""
    atomic.atomic_write_json(os.path.join(folder, "metrics.json"), summary)
    atomic.atomic_write_text(os.path.join(folder, "metrics.md"), report.markdown(summary))
    if summary["epe"] is not None:
        log_tensorboard(os.path.join(folder, "tb"), summary, step_of(prefix))
    sheet = outcome.sheet.write(os.path.join(folder, "contact_sheet.png"))
    report.write_html(os.path.join(folder, "index.html"), summary, sheet, outcome.pictures)


def _needs(cfg: commands.EvalConfig, ds: DatasetSpec, split: str, samples: List[Sample]) -> Sequence[int]:
    """About how many bytes the flow files and the rest of the run dir (pictures, contact sheet) will take,
    sized from the first pair (raw pixels: a bound for the PNGs), so a disk short of it is refused up front."""
    h, w = samples[0].load()[0].shape[:2]
    n = len(samples)
    write_flo = (split == "test") if cfg.flo is None else cfg.flo
    per_flow = h * w * 6 if _flow_sub(ds, split) == "submission" else h * w * 8 + 12
    pictures = min(n, cfg.pictures_max or n) * 2 * h * w * 3 if cfg.pictures else 0
    thumb = report.THUMB_WIDTH * (report.THUMB_WIDTH * h // max(w, 1) + report.LABEL_HEIGHT) * 3
    return (n * per_flow if write_flo else 0), pictures + min(n, cfg.sheet_pairs) * 4 * thumb + (64 << 10)


@cli.entry("eval")
def main(cfg: commands.EvalConfig) -> None:
    """Evaluate a checkpoint on a data set split (or export test-set flows)."""
    spec, ds = cfg.model, cfg.dataset
    if ds.root:
        ds = replace(ds, root=cache.localize(str(ds.root), cfg.storage, "dataset"))
    split = cfg.split or ds.eval_split
    if split not in ROLES:
        raise UserError("bad setting split=%s: must be one of %s" % (split, ", ".join(ROLES)))
    samples = datasets.build(ds, split)
    flo_need, run_need = _needs(cfg, ds, split, samples)
    run_dir = preflight.preflight_dir(cli.run_dir(cfg.out), "out", need=run_need + (0 if cfg.flo_dir else flo_need))
    flo_dir = preflight.preflight_dir(cfg.flo_dir, "flo_dir", need=flo_need) if cfg.flo_dir else None
    preflight.refuse_folders([os.path.join(run_dir, n) for n in RESULT_FILES], "out", run_dir)
    predictor = open_predictor(spec, cfg.ckpt, cfg.device, cfg.storage)
    prefix = predictor.prefix
    log.info("evaluating %s (%s) on %s split %s (%s): %d pairs", prefix, spec.name, ds.name, split, ROLES[split],
             len(samples))
    # the result folder appears complete or not at all: built in a temp sibling, metrics.json moved in last
    with atomic.atomic_dir(run_dir, last="metrics.json") as stage:
        opts = _options(cfg, ds, split, stage, flo_dir)
        try:
            outcome = evaluate(predictor, samples, opts, needs_gt=split != "test", passes=ds.passes)
        finally:
            predictor.close()
        summary = summarize(outcome, ds, split, spec.name, prefix)
        summary["flo_dir"] = opts.flo_dir and (flo_dir or os.path.join(run_dir, _flow_sub(ds, split)))
        if outcome.reduced is not None and outcome.reduced.total.n:
            summary["reduced"] = {"max_side": opts.max_side, "epe": float(outcome.reduced.total.mean())}
            log.info("EPE at max_side=%d: %.4f px (full size %.4f px)", opts.max_side, summary["reduced"]["epe"],
                     summary["epe"])
        _write_results(stage, summary, outcome, prefix)
    if summary["epe"] is not None:
        log.info("%s: EPE %.4f px over %d pairs -> %s", report.title(summary), summary["epe"], summary["pairs"],
                 run_dir)
    if opts.flo_dir:
        log.info("wrote %d flow files under %s", outcome.flo_files, summary["flo_dir"])
        _submit(cfg, ds, split, summary["flo_dir"], run_dir)


def _submit(cfg: commands.EvalConfig, ds: DatasetSpec, split: str, flo_dir: str, run_dir: str) -> None:
    """KITTI test: zip the PNG tree. Sintel test: run the bundler (``bundler=PATH``) or print its command."""
    if split != "test":
        return
    if ds.kind == "kitti2015":
        path = os.path.join(run_dir, "%s_submission.zip" % ds.name)
        n = submission.zip_tree(flo_dir, path)
        print("KITTI submission (%d flow maps): %s" % (n, path), flush=True)
    elif ds.kind == "sintel":
        out = os.path.join(run_dir, "sintel_submission.lzma")
        bundler = cfg.bundler
        if not bundler:
            cmd = [os.path.join("<MPI-Sintel-complete>", "bundler", "linux-x64", "bundler"),
                   os.path.join(flo_dir, "clean"), os.path.join(flo_dir, "final"), out]
            print("Sintel submission: run  %s  (or add bundler=PATH)" % " ".join(shlex.quote(c) for c in cmd),
                  flush=True)
            return
        cmd = submission.bundler_command(os.path.abspath(str(bundler)), flo_dir, ds.passes, out)
        submission.run_bundler(cmd)
        print("Sintel submission: %s" % out, flush=True)


if __name__ == "__main__":
    main()

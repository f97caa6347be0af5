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
  ``flow/<pass>/<scene>/frame_XXXX.flo`` for both passes, the layout Sintel's submission bundler reads.
"""

import logging
import os
import re
import time
from dataclasses import dataclass, field, replace
from typing import Dict, List, Optional, Sequence

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from pwcflow import cli, config, report
from pwcflow.data import datasets, flowio, pipeline
from pwcflow.data.datasets import DatasetSpec, Sample
from pwcflow.errors import UserError
from pwcflow.metrics import FlowMetrics
from pwcflow.predictor import FlowPredictor
from pwcflow.runtime import checkpoint, device, outputs, storage, summaries

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
    out = Outcome(FlowMetrics(), report.ContactSheet())
    bar = tqdm(total=len(samples), unit="pair", disable=not opts.progress, dynamic_ncols=True)
    start = time.time()
    for names, x, y, valid in pipeline.eval_batches(samples, opts.batch, opts.workers):
        if y is None and needs_gt:
            raise UserError("ground truth missing for pair %s: %s" % (names[0], by_name[names[0]].where))
        flows = predictor.predict_batch(x)
        if not out.first_batch_seconds:
            out.first_batch_seconds = time.time() - start
        for i, name in enumerate(names):
            gt = None if y is None else y[i]
            vi = None if valid is None else valid[i]
            epe = None
            if gt is not None:
                epe = out.metrics.update_pair(name, scene_key(by_name[name], passes), flows[i], gt, vi)
            if opts.flo_dir:
                flowio.write_flo(os.path.join(opts.flo_dir, name + ".flo"), flows[i])
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
    bar.close()
    out.seconds = time.time() - start
    return out


def _write_pictures(folder: str, name: str, pics: List[np.ndarray]) -> List[str]:
    """Prediction colour wheel (and error map when there is ground truth) for one pair."""
    files = [(os.path.join(folder, name + "_flow.png"), pics[2] if len(pics) == 4 else pics[1])]
    if len(pics) == 4:
        files.append((os.path.join(folder, name + "_error.png"), pics[3]))
    for path, img in files:
        flowio.write_image(path, img)
    return [path for path, _ in files]


def step_of(prefix: str) -> int:
    """Training step from a checkpoint prefix like ``pwcnet.ckpt-595000`` (0 if none)."""
    m = re.search(r"-(\d+)$", prefix)
    return int(m.group(1)) if m else 0


def log_tensorboard(logdir: str, summary: Dict, step: int) -> None:
    """Write the headline scalars (and per-scene EPE) under ``eval/<dataset>/<split>/``."""
    tag = "eval/%s/%s/" % (summary["dataset"], summary["split"])
    values = {"epe": summary["epe"]}
    values.update(("epe_%s" % k, v) for k, v in summary["bands"].items())
    values.update(("outliers_%s" % k, v) for k, v in summary["outliers"].items())
    values.update(("scene/%s" % k, v) for k, v in summary["per_scene"].items())
    board = summaries.Board(logdir)
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
        "seconds": round(outcome.seconds, 3),
        "pairs_per_second": round(n / outcome.seconds, 3) if outcome.seconds > 0 else None,
    })
    return summary


def _run_dir(out: Optional[str]) -> str:
    if out:
        return os.path.abspath(str(out))
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir


def _options(cfg: DictConfig, split: str, stage: str, flo_dir: Optional[str]) -> Options:
    """``Options`` writing into the staging folder (an explicit ``flo_dir`` is written in place)."""
    write_flo = (split == "test") if cfg.flo is None else bool(cfg.flo)
    return Options(batch=int(cfg.batch), workers=int(cfg.workers),
                   flo_dir=(flo_dir or os.path.join(stage, "flow")) if write_flo else None,
                   pictures_dir=os.path.join(stage, "pictures") if cfg.pictures else None,
                   pictures_max=int(cfg.pictures_max), sheet_pairs=int(cfg.sheet_pairs),
                   max_flow=cfg.max_flow, progress=bool(cfg.progress))


def _check_numbers(cfg: DictConfig) -> None:
    config.number(cfg.batch, "batch", int, 1)
    for key in ("workers", "pictures_max", "sheet_pairs"):
        config.number(cfg[key], key, int, 0)
    config.number(cfg.max_flow, "max_flow", float, 0.0, low_open=True, optional=True)


def _write_results(folder: str, summary: Dict, outcome: Outcome, prefix: str) -> None:
    """metrics.json/.md, tb/, contact sheet and index.html into ``folder`` (the staging folder)."""
    checkpoint.write_json_atomic(os.path.join(folder, "metrics.json"), summary)
    checkpoint.write_text_atomic(os.path.join(folder, "metrics.md"), report.markdown(summary))
    if summary["epe"] is not None:
        log_tensorboard(os.path.join(folder, "tb"), summary, step_of(prefix))
    sheet = outcome.sheet.write(os.path.join(folder, "contact_sheet.png"))
    report.write_html(os.path.join(folder, "index.html"), summary, sheet, outcome.pictures)


@cli.entry("eval")
def main(cfg: DictConfig) -> None:
    """Evaluate a checkpoint on a data set split (or export test-set flows)."""
    cli.require(cfg, "ckpt")
    _check_numbers(cfg)
    spec = config.model_spec(cfg.model)
    ds = datasets.spec_from_config(cfg.dataset)
    if ds.root:
        ds = replace(ds, root=storage.localize(str(ds.root), cfg.storage, "dataset"))
    split = str(cfg.split or ds.eval_split)
    if split not in ROLES:
        raise UserError("bad setting split=%s: must be one of %s" % (split, ", ".join(ROLES)))
    run_dir = outputs.preflight_dir(_run_dir(cfg.out), "out")
    flo_dir = outputs.preflight_dir(str(cfg.flo_dir), "flo_dir") if cfg.flo_dir else None
    samples = datasets.build(ds, split)
    prefix = checkpoint.resolve(storage.localize(str(cfg.ckpt), cfg.storage, "checkpoint"))
    log.info("evaluating %s (%s) on %s split %s (%s): %d pairs", prefix, spec.name, ds.name, split, ROLES[split],
             len(samples))
    device.prepare(cfg.device)
    predictor = FlowPredictor(spec, prefix, device.session_config(cfg.device, training=False))
    # the result folder appears complete or not at all: built in a temp sibling, metrics.json moved in last
    with outputs.atomic_dir(run_dir, last="metrics.json") as stage:
        opts = _options(cfg, split, stage, flo_dir)
        try:
            outcome = evaluate(predictor, samples, opts, needs_gt=split != "test", passes=ds.passes)
        finally:
            predictor.close()
        summary = summarize(outcome, ds, split, spec.name, prefix)
        summary["flo_dir"] = opts.flo_dir and (flo_dir or os.path.join(run_dir, "flow"))
        _write_results(stage, summary, outcome, prefix)
    if summary["epe"] is not None:
        log.info("%s: EPE %.4f px over %d pairs -> %s", report.title(summary), summary["epe"], summary["pairs"],
                 run_dir)
    if opts.flo_dir:
        log.info("wrote %d .flo files under %s", outcome.flo_files, summary["flo_dir"])
        if ds.kind == "sintel" and split == "test":
            dirs = " ".join(os.path.join(summary["flo_dir"], p) for p in ds.passes)
            log.info("Sintel submission: bundler %s <name>.lzma (Sintel's tool takes the clean and final dirs)", dirs)


if __name__ == "__main__":
    main()

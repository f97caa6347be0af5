"""Validation during training: score the current weights, keep the history and the best checkpoint.

``sums`` runs the same pad-predict-crop path as eval and predict (``predictor.predict_padded``) over this worker's
``share`` of the pairs; the workers' sums are added up in the graph (``Engine.sum_across``), so every worker scores
1/N of the pairs at the same time and none waits in a collective for longer than its own share;
``Validation`` owns ``metrics.json`` (history, latest scores, best) and decides when the best changes.
"""

import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from pwcflow.data import pipeline
from pwcflow.data.datasets import Sample
from pwcflow.evaluation.metrics import FlowMetrics
from pwcflow.files.atomic import atomic_write_json, read_json
from pwcflow.files.tensorboard import emit

Predict = Callable[[np.ndarray], np.ndarray]  # [B, 2, H, W, 3] -> [B, H, W, 2]


def share(samples: Sequence[Sample], limit: int, rank: int = 0, workers: int = 1) -> List[Sample]:
    """This worker's pairs of the first ``limit`` (0 = all): every ``workers``-th, starting at ``rank``."""
    return list(samples[:limit] if limit > 0 else samples)[rank::workers]


def sums(predict: Predict, samples: Sequence[Sample]) -> Tuple[float, int]:
    """(sum of per-pixel end-point errors, pixel count) of ``predict`` over ``samples``: what workers add up."""
    acc = FlowMetrics()
    for names, x, y, valid in pipeline.eval_batches(samples, batch=1):
        acc.update(names, [s.split("/")[0] for s in names], predict(x), y, valid)
    return acc.total.err, acc.total.n


def epe(err: float, pixels: float) -> Optional[float]:
    """All-pixel EPE from summed errors and pixels (None when no pixel was scored)."""
    return float(err / pixels) if pixels else None


def score_shared(predict: Predict, val: Sequence[Sample], train: Sequence[Sample], limits: Tuple[int, int],
                 rank: int, workers: int, add_up: Callable[[np.ndarray], np.ndarray]
                 ) -> Tuple[Optional[float], Optional[float], str]:
    """(held-out EPE, training-split EPE, a log line) scored by ``workers`` processes together: this one scores its
    ``share`` of each (``limits``: the pair counts), ``add_up`` (the engine's all-reduce) adds the workers' sums."""
    t0 = time.time()
    mine = share(val, limits[0], rank, workers), share(train, limits[1], rank, workers)
    totals = np.array(sums(predict, mine[0]) + sums(predict, mine[1]), np.float64)
    t1 = time.time()
    totals = add_up(totals)
    line = "%d + %d pairs scored here in %.2f s, then %.2f s in the all-reduce" % (
        len(mine[0]), len(mine[1]), t1 - t0, time.time() - t1)
    return epe(totals[0], totals[1]), epe(totals[2], totals[3]), line


def fmt(v: Optional[float]) -> str:
    """A score for a log line."""
    return "n/a" if v is None else "%.3f" % v


class Validation:
    """``metrics.json`` of a run: each validation's scores, the history, and the best (saved by ``save_best``)."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, "metrics.json")
        self.metrics: Dict = read_json(self.path) or {"history": []}

    def reload(self) -> None:
        """Re-read ``metrics.json`` (after it was pulled from the run mirror)."""
        self.metrics = read_json(self.path) or self.metrics

    def record(self, step: int, val_epe: Optional[float], train_epe: Optional[float],
               save_best: Callable[[int], str]) -> None:
        """Record one validation; call ``save_best(step)`` (returns the checkpoint prefix) on a new best."""
        key = val_epe if val_epe is not None else train_epe
        m = self.metrics
        m.update({"step": step, "val_epe": val_epe, "train_split_epe": train_epe,
                  "val_split": "val" if val_epe is not None else None,
                  "best_by": "val_epe" if val_epe is not None else "train_split_epe"})
        m["history"] = [h for h in m["history"] if h.get("step") != step]  # a rerun validating the same step again
        m["history"].append({"step": step, "val_epe": val_epe, "train_split_epe": train_epe})
        if key is not None and (m.get("best_epe") is None or key < m["best_epe"]):
            prefix = save_best(step)
            m.update({"best_epe": key, "best_step": step, "best_ckpt": os.path.relpath(prefix, self.run_dir)})
        atomic_write_json(self.path, m)
        emit("%s Iter %d [Val]: val_epe=%s (held-out), train_split_epe=%s (training data), best=%s @ %s"
             % (time.strftime("%Y-%m-%d %H:%M:%S"), step, fmt(val_epe), fmt(train_epe),
                fmt(m.get("best_epe")), m.get("best_step")))

    def summary(self, step: int, run_dir: str) -> str:
        """The run's closing line."""
        m = self.metrics
        return ("done: %d steps, val_epe=%s, train_split_epe=%s, best=%s at step %s, run dir %s"
                % (step, fmt(m.get("val_epe")), fmt(m.get("train_split_epe")), fmt(m.get("best_epe")),
                   m.get("best_step"), run_dir))

    def scores(self) -> List[tuple]:
        """(tag, value) of the latest validation for TensorBoard."""
        m = self.metrics
        return [(k, v) for k, v in (("val/epe", m.get("val_epe")), ("val/train_split_epe", m.get("train_split_epe")))
                if v is not None]

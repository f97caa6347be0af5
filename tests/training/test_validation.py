"""Validation during training (``training/validation.py``): each worker's share of the pairs, sums that add up to
the one-process EPE, and ``metrics.json``'s history and best."""

import numpy as np
import pytest

from pwcflow.data.datasets import build, spec_from_config
from pwcflow.training import validation

SPEC = spec_from_config({"name": "s", "kind": "synthetic", "train_size": 2, "val_size": 7, "size": [64, 96]})


def _predict(x: np.ndarray) -> np.ndarray:
    """A fixed, imperfect 'network': a 1.5 px flow to the right everywhere."""
    out = np.zeros(x.shape[:1] + x.shape[2:4] + (2,), np.float32)
    out[..., 0] = 1.5
    return out


def test_shares_cover_the_pairs_once_and_their_sums_give_the_one_process_epe():
    samples = build(SPEC, "val")
    shares = [validation.share(samples, 6, r, 3) for r in range(3)]
    assert sorted(s.name for sh in shares for s in sh) == sorted(s.name for s in samples[:6])
    assert [len(sh) for sh in shares] == [2, 2, 2]
    parts = [validation.sums(_predict, sh) for sh in shares]
    whole = validation.sums(_predict, samples[:6])
    err, px = sum(p[0] for p in parts), sum(p[1] for p in parts)
    assert px == whole[1] == 6 * 64 * 96 and validation.epe(err, px) == pytest.approx(validation.epe(*whole), 1e-12)
    assert validation.share(samples, 0, 0, 1) == samples and validation.share(samples, 2, 2, 3) == []
    assert validation.epe(0.0, 0) is None


def test_record_keeps_history_once_per_step_and_the_best(tmp_path):
    v = validation.Validation(str(tmp_path))
    saved = []

    def save_best(step: int) -> str:
        saved.append(step)
        return str(tmp_path / "checkpoints" / "best" / ("pwcnet.ckpt-%d" % step))

    v.record(10, 3.0, 2.5, save_best)
    v.record(20, 3.5, 2.0, save_best)
    v.record(20, 2.0, 1.9, save_best)  # the same step again (a rerun after completion): replaced, not appended
    m = validation.Validation(str(tmp_path)).metrics
    assert [h["step"] for h in m["history"]] == [10, 20] and m["history"][-1]["val_epe"] == 2.0
    assert saved == [10, 20] and (m["best_epe"], m["best_step"]) == (2.0, 20)

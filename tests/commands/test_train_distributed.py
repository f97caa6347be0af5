"""``python -m pwcflow.train`` with 2 collective workers on 127.0.0.1: lock-step training, chief-only I/O."""

import json
import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

from pwcflow.device import distribute


def _two_workers(tmp_path, args):
    """``python -m pwcflow.train ARGS`` as 2 collective workers on 127.0.0.1 (run dirs outputs/w0, w1): (out, err)."""
    workers = "[%s]" % ",".join("127.0.0.1:%d" % p for p in distribute.free_ports(2))
    args = args + ["device.distribute.workers=%s" % workers]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "pwcflow.train"] + args +
                              ["device.distribute.rank=%d" % r, "hydra.run.dir=outputs/w%d" % r],
                              cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True) for r in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return outs


@pytest.mark.slow
def test_two_workers_train_in_lock_step(tmp_path):
    outs = _two_workers(tmp_path, TINY + ["train.iterations=4", "train.save_interval=2", "train.val_interval=4"])
    rank1 = (tmp_path / "outputs" / "w1" / "rank1.log").read_text()  # non-chief ranks: status lines in their file
    losses = [[ln.split()[5] for ln in text.splitlines() if "[Train]:" in ln] for text in (outs[0][0], rank1)]
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # the all-reduced loss is the same on both workers
    assert "[Train]:" not in outs[1][0]  # status lines only from the chief on stdout
    assert (tmp_path / "outputs" / "w0" / "checkpoints" / "checkpoint").exists()
    assert not (tmp_path / "outputs" / "w1" / "checkpoints").exists()  # only the chief writes
    assert "done: 4 steps" in outs[0][0] and "done: 4 steps" in outs[1][0]


@pytest.mark.slow
def test_two_workers_share_each_validation(tmp_path):
    """Each worker scores its half of the validation pairs at the same time, the sums are all-reduced: no worker
    waits in a collective for longer than one validation, and the chief's val_epe is a 1-process eval's."""
    tiny = [a for a in TINY if not a.startswith(("dataset.val_size=", "train.val_pairs=", "train.train_eval_pairs="))]
    _two_workers(tmp_path, tiny + ["dataset.val_size=48", "train.val_pairs=48", "train.train_eval_pairs=4",
                                   "train.iterations=4", "train.save_interval=3", "train.val_interval=2"])
    line = re.compile(r"validation at step (\d+): (\d+) \+ (\d+) pairs scored here in ([\d.]+) s, then ([\d.]+) s in "
                      r"the all-reduce")
    found = [[m.groups() for m in line.finditer((tmp_path / "outputs" / ("w%d" % r) / "train.log").read_text())]
             for r in (0, 1)]
    assert [[g[:3] for g in f] for f in found] == [[("2", "24", "2"), ("4", "24", "2")]] * 2  # each its share
    for v in range(2):  # every validation: a worker waits for the others' share at most, never a whole validation
        scoring = [float(found[r][v][3]) for r in (0, 1)]
        assert all(float(found[r][v][4]) < 0.5 * sum(scoring) for r in (0, 1)), found
    metrics = json.loads((tmp_path / "outputs" / "w0" / "metrics.json").read_text())
    assert not (tmp_path / "outputs" / "w1" / "metrics.json").exists()  # only the chief records
    proc = subprocess.run([sys.executable, "-m", "pwcflow.eval", "ckpt=outputs/w0/checkpoints", "model=sm-6-2",
                           "dataset=synthetic", "dataset.val_size=48", "dataset.size=[64,128]", "split=val",
                           "out=eval"], cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    single = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["step"] == 4 and single["pairs"] == 48
    assert metrics["val_epe"] == pytest.approx(single["epe"], rel=1e-5)

"""``python -m pwcflow.train`` with 2 collective workers on 127.0.0.1: lock-step training, chief-only I/O."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

from pwcflow.device import distribute


@pytest.mark.slow
def test_two_workers_train_in_lock_step(tmp_path):
    workers = "[%s]" % ",".join("127.0.0.1:%d" % p for p in distribute.free_ports(2))
    args = TINY + ["train.iterations=4", "train.save_interval=2", "train.val_interval=4",
                   "device.distribute.workers=%s" % workers]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-m", "pwcflow.train"] + args +
                              ["device.distribute.rank=%d" % r, "hydra.run.dir=outputs/w%d" % r],
                              cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True) for r in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    rank1 = (tmp_path / "outputs" / "w1" / "rank1.log").read_text()  # non-chief ranks: status lines in their file
    losses = [[ln.split()[5] for ln in text.splitlines() if "[Train]:" in ln] for text in (outs[0][0], rank1)]
    assert len(losses[0]) == 2 and losses[0] == losses[1]  # the all-reduced loss is the same on both workers
    assert "[Train]:" not in outs[1][0]  # status lines only from the chief on stdout
    assert (tmp_path / "outputs" / "w0" / "checkpoints" / "checkpoint").exists()
    assert not (tmp_path / "outputs" / "w1" / "checkpoints").exists()  # only the chief writes
    assert "done: 4 steps" in outs[0][0] and "done: 4 steps" in outs[1][0]

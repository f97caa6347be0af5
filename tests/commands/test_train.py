"""``python -m pwcflow.train`` end to end: runs, resumes after kill -9, rejects bad overrides early."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, TINY, run_module


def _ckpt_steps(run):
    d = run / "checkpoints"
    return sorted(int(f.split("-")[-1].split(".")[0]) for f in os.listdir(str(d)) if f.endswith(".index"))


def test_train_runs_and_writes_run_dir(tmp_path):
    proc = run_module("pwcflow.train", *TINY, "train.iterations=6", "train.save_interval=3", "train.val_interval=3",
                      "run_name=t1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "outputs" / "train" / "t1"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["step"] == 6 and metrics["val_epe"] > 0 and metrics["train_split_epe"] > 0
    assert [h["step"] for h in metrics["history"]] == [3, 6]
    assert _ckpt_steps(run) == [3, 6]
    assert (run / "checkpoints" / "best" / "checkpoint").exists()
    events = list((run / "tb").glob("events.out.tfevents.*"))
    assert events
    from pwcflow.tf1 import tf

    tags = {v.tag for e in tf.train.summary_iterator(str(events[0])) for v in e.summary.value}
    assert {"train/loss", "train/epe", "train/lr", "val/epe", "perf/pairs_per_sec",
            "train/frame1_prediction_groundtruth"} <= tags
    lines = [ln for ln in proc.stdout.splitlines() if "[Train]:" in ln]
    assert len(lines) == 3
    fields = lines[-1].split()
    assert fields[2:4] == ["Iter", "6"] and fields[5].startswith("loss=") and fields[9].startswith("sec/step=")
    assert "done: 6 steps" in proc.stdout


@pytest.mark.slow
def test_kill9_then_rerun_resumes(tmp_path):
    args = TINY + ["train.iterations=400", "train.save_interval=2", "train.val_interval=1000", "run_name=k"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "pwcflow.train"] + args, cwd=str(tmp_path), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = tmp_path / "outputs" / "train" / "k"
    deadline = time.time() + 240
    while time.time() < deadline:
        if (run / "checkpoints").is_dir() and len(_ckpt_steps(run)) >= 2:
            break
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps_before = _ckpt_steps(run)
    assert steps_before, "no checkpoint was written before the kill"
    last = steps_before[-1]
    resumed = run_module("pwcflow.train", *(args[:-3] + ["train.iterations=%d" % (last + 4), "train.save_interval=2",
                                                         "train.val_interval=1000", "run_name=k"]), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr + resumed.stdout or _ckpt_steps(run)[-1] == last + 4
    first_line = [ln for ln in resumed.stdout.splitlines() if "[Train]:" in ln][0]
    assert int(first_line.split()[3]) == last + 2
    assert _ckpt_steps(run)[-1] == last + 4
    assert not [f for f in os.listdir(str(run / "checkpoints")) if f.startswith(".tmp")]


@pytest.mark.parametrize("override,needle", [
    ("dataset=nope", "dataset"),
    ("train.batch_size=-1", "train.batch_size"),
    ("train.crop=[256,448]", "train.crop"),
    ("train.crop=[100,128]", "train.crop"),
    ("optimizer.name=rmsprop", "optimizer.name"),
])
def test_bad_overrides_fail_before_graph(override, needle, tmp_path):
    proc = run_module("pwcflow.train", *TINY, "train.iterations=2", override, cwd=tmp_path, timeout=120)
    assert proc.returncode != 0
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs" / "train").exists() or not list((tmp_path / "outputs").rglob("*.index"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    """Four sane steps (lr 1e-4, a checkpoint each), then lr 1e12 blows the weights up: training stops at the first
    non-finite loss, drops the checkpoint of the weights that produced it and names the one before as the last good."""
    proc = run_module("pwcflow.train", *TINY, "train.iterations=50", "train.save_interval=1", "train.val_interval=1000",
                      "optimizer.name=sgd", "lr_schedule.boundaries=[4]", "lr_schedule.rates=[1.0e-4,1.0e12]",
                      "run_name=nan", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    line = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")][0]
    assert "loss became" in line and "Traceback" not in proc.stderr
    step = int(line.split(" at step ")[1].split(":")[0])
    assert step > 4  # the first four steps were fine
    run = tmp_path / "outputs" / "train" / "nan"
    steps = _ckpt_steps(run)
    assert steps and steps[-1] == step - 2  # the weights that produced the NaN loss (step - 1) are not kept
    last_good = run / "checkpoints" / ("pwcnet.ckpt-%d" % steps[-1])
    assert line.endswith("last good checkpoint: %s" % last_good), line
    assert 'model_checkpoint_path: "%s"' % last_good.name in (run / "checkpoints" / "checkpoint").read_text()
    from pwcflow.tf1 import tf

    reader = tf.train.NewCheckpointReader(str(last_good))
    assert all(np.isfinite(reader.get_tensor(n)).all() for n in reader.get_variable_to_shape_map())


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    args = TINY + ["train.iterations=1000", "train.save_interval=1000", "train.val_interval=1000", "run_name=int"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    log = tmp_path / "stdout.txt"
    with open(str(log), "w") as out_fh, open(str(tmp_path / "stderr.txt"), "w") as err_fh:
        proc = subprocess.Popen([sys.executable, "-m", "pwcflow.train"] + args, cwd=str(tmp_path), env=env,
                                stdout=out_fh, stderr=err_fh)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and "[Train]:" not in log.read_text():
            time.sleep(0.5)  # wait until training is under way
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted at step" in err and "Traceback" not in err
    run = tmp_path / "outputs" / "train" / "int"
    steps = _ckpt_steps(run)
    assert steps and steps[-1] >= 2 and steps[-1] == int(err.split("interrupted at step ")[1].split(":")[0])


def test_sintel_without_val_split_reports_training_split_epe(tmp_path):
    from support.layouts import make_sintel

    root = make_sintel(tmp_path / "Sintel", scenes=("alley_1",), frames=4, size=(64, 128), passes=("clean",))
    proc = run_module("pwcflow.train", "model=sm-6-2", "dataset=sintel_clean", "dataset.root=%s" % root,
                      "train.crop=[64,128]", "train.batch_size=1", "train.iterations=2", "train.display_interval=1",
                      "train.save_interval=2", "train.val_interval=2", "train.train_eval_pairs=2", "run_name=s",
                      cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((tmp_path / "outputs" / "train" / "s" / "metrics.json").read_text())
    assert m["val_epe"] is None and m["train_split_epe"] > 0 and m["best_by"] == "train_split_epe"
    assert "val_epe=n/a (held-out)" in proc.stdout

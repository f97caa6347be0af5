"""Multirun sweeps: each job gets its own run dir, with Hydra's basic launcher and the joblib launcher."""

import json

import pytest
from conftest import TINY, run_module


def _runs(tmp_path):
    return sorted(p.parent for p in (tmp_path / "outputs" / "multirun").rglob("metrics.json"))


@pytest.mark.slow
def test_sweep_schedules_and_models_basic_launcher(tmp_path):
    proc = run_module("pwcflow.train", "-m", *[a for a in TINY if not a.startswith("model=")],
                      "train.iterations=2", "train.save_interval=2", "train.val_interval=2",
                      "lr_schedule=multisteps,cyclic", "model=lg-6-2,sm-6-2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = _runs(tmp_path)
    names = sorted(p.name.split("_", 1)[1] for p in runs)
    assert names == ["lg-6-2-cyclic-synthetic", "lg-6-2-multisteps-synthetic", "sm-6-2-cyclic-synthetic",
                     "sm-6-2-multisteps-synthetic"]
    assert sorted(p.name.split("_", 1)[0] for p in runs) == ["0", "1", "2", "3"]
    for run in runs:
        assert json.loads((run / "metrics.json").read_text())["step"] == 2
        assert (run / "checkpoints" / "checkpoint").exists()


@pytest.mark.slow
def test_sweep_with_joblib_launcher(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    proc = run_module("pwcflow.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *TINY,
                      "train.iterations=2", "train.save_interval=2", "train.val_interval=2",
                      "lr_schedule=multisteps,cyclic", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name.split("_", 1)[1] for p in _runs(tmp_path)) == ["sm-6-2-cyclic-synthetic",
                                                                         "sm-6-2-multisteps-synthetic"]

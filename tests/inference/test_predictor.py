"""Opening a checkpoint for inference (``inference/predictor.py``): one refusal order for every command, and the
pad-predict-crop path."""

import importlib.util

import numpy as np
import pytest
from conftest import random_checkpoint

from pwcflow.config.compose import compose_group
from pwcflow.device import backend
from pwcflow.errors import UserError
from pwcflow.inference import predictor
from pwcflow.model.spec import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)


def test_open_predictor_restores_and_names_its_checkpoint(tmp_path):
    random_checkpoint(tmp_path / "run", seed=3, step=7)
    p = predictor.open_predictor(SM, str(tmp_path / "run"), compose_group("device", "cpu", {}),
                                 compose_group("storage", "local", {}))
    try:
        assert p.prefix.endswith("pwcnet.ckpt-7")
        flow = p.predict(np.zeros((70, 100, 3), np.uint8), np.zeros((70, 100, 3), np.uint8))
        assert flow.shape == (70, 100, 2) and np.isfinite(flow).all()
    finally:
        p.close()


def test_device_is_refused_before_the_checkpoint_is_looked_at(tmp_path):
    if importlib.util.find_spec("npu_bridge") is not None:
        pytest.skip("npu_bridge is installed here")
    with pytest.raises(UserError) as err:
        predictor.locate_checkpoint(str(tmp_path / "missing"), compose_group("device", "npu", {}),
                                    compose_group("storage", "local", {}))
    assert str(err.value) == backend.NPU_MISSING


def test_memory_estimate_comes_before_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setenv("PWCFLOW_MEMORY_BYTES", str(1 << 20))  # 1 MiB available: no frame fits
    with pytest.raises(UserError) as err:
        predictor.locate_checkpoint(str(tmp_path / "missing"), compose_group("device", "cpu", {}),
                                    compose_group("storage", "local", {}), SM, fits=(448, 1024))
    assert str(err.value).startswith("a pair of 1024x448 needs about") and "max_side=" in str(err.value)


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(UserError) as err:
        predictor.locate_checkpoint(str(tmp_path / "missing"), compose_group("device", "cpu", {}),
                                    compose_group("storage", "local", {}))
    assert str(tmp_path / "missing") in str(err.value) and "\n" not in str(err.value)

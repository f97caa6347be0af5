"""``python -m pwcflow.doctor``: passes here, and names a problem in one line when something is wrong."""

import shutil

import numpy as np
import pytest
from conftest import error_line, run_module

from pwcflow import doctor
from pwcflow.config.compose import compose_group
from pwcflow.reference import REF_DIR


@pytest.mark.slow
def test_doctor_passes_on_this_machine(tmp_path):
    proc = run_module("pwcflow.doctor", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for what in ("python", "tensorflow", "hydra", "opencv", "OBS SDK", "npu_bridge", "CANN", "GPUs visible"):
        assert what in out
    rows = [ln.split() for ln in out.splitlines()  # the parity rows, not the "<variant> graph: ..." log lines
            if ln.strip().startswith(("sm-6-2", "lg-6-2")) and "max |diff|" in ln]
    assert [r[0] for r in rows] == ["sm-6-2", "lg-6-2"] and all(r[-1] == "ok" for r in rows)
    assert all(float(r[3]) <= 1e-4 for r in rows)
    assert "all checks passed" in out and "error:" not in proc.stderr
    assert list(tmp_path.iterdir()) == []  # the doctor writes nothing


def test_doctor_fails_in_one_line_on_a_wrong_reference(tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(REF_DIR, str(ref))
    with np.load(str(ref / "sm" / "expected.npz")) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["final"][60, 100, 0] += 0.01  # one pixel 0.01 px off
    np.savez(str(ref / "sm" / "expected.npz"), **arrays)
    proc = run_module("pwcflow.doctor", "reference=%s" % ref, "variants=[sm]", cwd=tmp_path)
    line = error_line(proc)
    assert line.startswith("error: sm-6-2 differs from tfoptflow by 0.01 px at final"), line
    assert "FAIL" in proc.stdout


def test_doctor_missing_reference_and_missing_gpu(tmp_path):
    proc = run_module("pwcflow.doctor", "reference=%s" % (tmp_path / "nope"), cwd=tmp_path)
    assert error_line(proc) == "error: reference folder not found: %s" % (tmp_path / "nope")
    if not doctor.visible_gpus():
        proc = run_module("pwcflow.doctor", "device=gpu", cwd=tmp_path)
        assert "TensorFlow sees no GPU" in error_line(proc)


def test_reduced_precision_profiles():
    def dev(name, **changes):
        return compose_group("device", name, changes)

    assert not doctor.reduced_precision(dev("cpu"))
    assert not doctor.reduced_precision(dev("gpu", mixed_precision=False))
    assert doctor.reduced_precision(dev("gpu", mixed_precision=True))
    assert doctor.reduced_precision(dev("npu", **{"npu.precision_mode": "allow_mix_precision"}))
    assert not doctor.reduced_precision(dev("npu", **{"npu.precision_mode": "force_fp32"}))
    assert doctor.reduced_precision(dev("npu", **{"npu.precision_mode": None}))  # CANN's default: fp16 where it can
    assert not doctor.reduced_precision(dev("npu", **{"npu.precision_mode": None, "npu.precision_mode_v2": "origin"}))

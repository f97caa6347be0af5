"""``python -m pwcflow.doctor``: passes here, and names a problem in one line when something is wrong."""

import re
import shutil

import numpy as np
import pytest
from conftest import error_line, run_module

from pwcflow import doctor
from pwcflow.config.compose import compose_group
from pwcflow.device import precision
from pwcflow.model import tuning
from pwcflow.reference import REF_DIR
from pwcflow.tf1 import IS_TF1

HAS_BF16 = precision.bf16_unit() is not None and not IS_TF1 and tuning.onednn_enabled()


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


def test_bf16_report_names_the_units_or_why_not(capsys):
    """The CPU-units line and the bf16 line appear; without the units bf16 is not measured, with a reason."""
    cpu = compose_group("device", "cpu", {})
    lines = doctor.report_bf16(cpu, flags={"avx2", "avx512f"})
    assert lines[0].split() == ["CPU", "bf16/AMX", "units", "none"]
    assert "not measured" in lines[1] and "AVX512-BF16 or AMX" in lines[1]
    lines = doctor.report_bf16(compose_group("device", "gpu", {}), flags={"amx_bf16", "amx_tile", "avx512_bf16"})
    assert lines[0].split()[-3:] == ["amx_bf16", "amx_tile", "avx512_bf16"] and "device=gpu" in lines[1]
    assert capsys.readouterr().out.count("device.precision=bf16") == 2


@pytest.mark.skipif(not HAS_BF16, reason="needs a CPU with bfloat16 units (AVX512-BF16/AMX) and TF 2.x with oneDNN")
def test_bf16_report_measures_speed_and_change_here():
    line = doctor.report_bf16(compose_group("device", "cpu", {}), rounds=1)[1]
    m = re.search(r"([0-9.]+)x fp32's speed .* max change ([0-9.]+) px", line)
    assert m, line
    assert float(m.group(1)) > 0 and 0 < float(m.group(2)) < 0.5  # bf16 ran (flows moved) and stayed close

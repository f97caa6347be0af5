"""``python -m pwcflow.doctor [device=cpu|gpu|npu] [reference=DIR]``: is this machine ready for pwcflow?

Prints the versions that matter (Python, TensorFlow, Hydra, OpenCV, OBS SDK, npu_bridge/CANN), the GPUs
TensorFlow sees, the CPU's bfloat16/AMX units with what ``device.precision=bf16`` gives on them
(``report_bf16``: speed ratio and max px change on a small pair; fp32 stays the default), and runs the
compact tfoptflow parity check (``pwcflow/reference``) on the chosen backend.
Every problem is one ``error: ...`` line on stderr; the exit status is 1 when any check fails.
"""

import dataclasses
import glob
import importlib
import os
import platform
import shutil
import sys
import tempfile
import zipfile
from typing import List, Optional, Tuple

from pwcflow import __version__, cli
from pwcflow.config.commands import DoctorConfig
from pwcflow.config.groups import DeviceConfig
from pwcflow.device import backend
from pwcflow.errors import UserError
from pwcflow.tf1 import TF_VERSION

CPU_UNITS = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512_fp16")
FP32_NPU_MODES = ("force_fp32", "must_keep_origin_dtype", "origin")
CANN_VERSION_FILES = ("ascend-toolkit/latest/version.cfg", "ascend-toolkit/latest/*/version.info",
                      "nnae/latest/version.cfg")


def _module_version(module: str, dist: Optional[str] = None) -> str:
    """``module.__version__`` or the installed distribution's version; 'not installed' when absent."""
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return "not installed"
    version = getattr(mod, "__version__", None) or getattr(mod, "VERSION", None)
    if version is None and dist:
        try:
            import pkg_resources

            version = pkg_resources.get_distribution(dist).version
        except Exception:  # noqa: BLE001 - a version we cannot read is not a problem
            version = "installed"
    return str(version or "installed")


def cann_version() -> str:
    """CANN's version from the Ascend install (``ASCEND_HOME`` or /usr/local/Ascend), or 'not found'."""
    home = os.environ.get("ASCEND_HOME", "/usr/local/Ascend")
    for pattern in CANN_VERSION_FILES:
        for path in sorted(glob.glob(os.path.join(home, pattern))):
            for line in open(path, errors="replace"):
                if "version" in line.lower() and "=" in line:
                    return line.split("=", 1)[1].strip()
    return "not found"


def visible_gpus() -> List[str]:
    """The GPUs TensorFlow can use (listing them allocates no GPU memory; TF 1.15 and 2.x alike)."""
    import tensorflow

    return [d.name for d in tensorflow.config.experimental.list_physical_devices("GPU")]


def versions(dev: DeviceConfig) -> List[Tuple[str, str]]:
    """(what, version) rows; npu_bridge is only imported on ``device=npu`` (it is absent elsewhere)."""
    npu = "not checked (device=npu checks it)"
    if dev.name == "npu":
        npu = _module_version("npu_bridge", "npu_bridge")
    return [("pwcflow", __version__), ("python", platform.python_version()), ("tensorflow", TF_VERSION),
            ("hydra", _module_version("hydra")), ("omegaconf", _module_version("omegaconf")),
            ("numpy", _module_version("numpy")), ("opencv", _module_version("cv2")),
            ("OBS SDK (esdk-obs-python)", _module_version("obs", "esdk-obs-python")), ("npu_bridge", npu),
            ("CANN", cann_version())]


def reduced_precision(dev: DeviceConfig) -> bool:
    """Whether the device computes (partly) in fp16: GPU auto mixed precision or an NPU mix/fp16 mode."""
    if dev.name == "gpu":
        return dev.mixed_precision
    if dev.name == "npu":  # both modes null: CANN's own default, allow_fp32_to_fp16 (fp16 where it can)
        return (dev.npu.precision_mode_v2 or dev.npu.precision_mode) not in FP32_NPU_MODES
    return False


def check_device(dev: DeviceConfig) -> List[str]:
    """Problems with the chosen device (no GPU for device=gpu, npu_bridge missing for device=npu)."""
    try:
        backend.prepare(dev)
    except UserError as exc:
        return [str(exc)]
    gpus = visible_gpus()
    print("  %-26s %s" % ("GPUs visible to TensorFlow", ", ".join(gpus) if gpus else "none"))
    if dev.name == "gpu" and not gpus:
        return ["device=gpu but TensorFlow sees no GPU (check the CUDA install, CUDA_VISIBLE_DEVICES, tensorflow "
                "vs tensorflow-cpu)"]
    return []


def report_bf16(dev: DeviceConfig, flags: Optional[set] = None, rounds: int = 3) -> Tuple[str, ...]:
    """Print the CPU's bfloat16/AMX units and what ``device.precision=bf16`` gives here: sm-6-2 forward on a
    small generated pair (random weights, seed 0), fp32 and bf16 in interleaved rounds (median speed ratio)
    and the max px change; a line saying why where bf16 cannot run. Informational: never a problem. Returns
    the printed lines."""
    import time

    import numpy as np

    from pwcflow.device import precision
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.model.pwcnet import ModelSpec

    flags = precision.cpu_flags() if flags is None else flags
    units = [u for u in CPU_UNITS if u in flags]
    lines = ["  %-26s %s" % ("CPU bf16/AMX units", " ".join(units) if units else "none")]
    try:
        if dev.name != "cpu":
            raise UserError("device=%s (bf16 is for device=cpu)" % dev.name)
        precision.check(dataclasses.replace(dev, precision="bf16"), flags)
    except UserError as exc:
        lines.append("  %-26s not measured: %s" % ("device.precision=bf16", str(exc).split(": ", 1)[-1]))
    else:
        spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
        x = np.random.RandomState(0).rand(1, 2, 128, 256, 3).astype(np.float32)
        preds, times, flows = {}, {"fp32": [], "bf16": []}, {}
        for p in ("fp32", "bf16"):  # the same graph seed: the same random weights in both (nothing written)
            dev_p = dataclasses.replace(dev, precision=p)
            preds[p] = FlowPredictor(spec, None, backend.base_config(dev_p, training=False), seed=0,
                                     bf16_fp32=precision.fp32_layers(dev_p))
        for r in range(rounds + 1):  # round 0 warms up (graph rewrite, kernel selection)
            for p, pred in preds.items():
                t0 = time.perf_counter()
                flows[p] = pred.predict_batch(x)
                if r:
                    times[p].append(time.perf_counter() - t0)
        for pred in preds.values():
            pred.close()
        ratio = float(np.median(np.array(times["fp32"]) / np.array(times["bf16"])))
        lines.append("  %-26s %.2fx fp32's speed (sm-6-2 forward 128x256, median of %d rounds), max change %.3f px "
                     "(random weights; fp32 stays the default)" % ("device.precision=bf16", ratio, rounds,
                                                                    float(np.abs(flows["bf16"] - flows["fp32"]).max())))
    for line in lines:
        print(line)
    return tuple(lines)


def check_parity(cfg: DoctorConfig) -> List[str]:
    """Run each variant on the reference pair on ``cfg.device``; one problem line per failing variant."""
    from pwcflow.reference import REF_DIR, parity

    ref = os.path.abspath(cfg.reference) if cfg.reference else REF_DIR
    if not os.path.isdir(ref):
        return ["reference folder not found: %s" % ref]
    mixed = reduced_precision(cfg.device)
    tol = cfg.tolerance_mixed if mixed else cfg.tolerance
    print("parity with tfoptflow (reference %s, device %s%s, tolerance %g px):"
          % (ref, cfg.device.name, ", fp16/mixed precision" if mixed else "", tol))
    problems, tmp = [], tempfile.mkdtemp(prefix="pwcflow-doctor-")
    try:
        for variant in cfg.variants:
            problems += _check_variant(variant, ref, tmp, tol, cfg.device, parity)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return problems


def _check_variant(variant: str, ref: str, tmp: str, tol: float, dev: DeviceConfig, parity) -> List[str]:
    """Forward one variant with the recipe weights and compare with the reference's flows."""
    if variant not in parity.SPECS:
        return ["unknown variant %r in variants= (use sm and/or lg)" % variant]
    try:
        want = _expected(variant, ref, parity)
        prefix = parity.make_checkpoint(variant, os.path.join(tmp, variant))
        diffs = parity.flow_differences(parity.forward(variant, prefix, ref, backend.session_config(dev, None, False)),
                                        want)
    except UserError as exc:
        return ["%s-6-2: %s" % (variant, exc)]
    worst = max(diffs, key=diffs.get)
    pyramid = max(v for k, v in diffs.items() if k != "final")
    ok = diffs[worst] <= tol
    print("  %s-6-2  max |diff| %.2e px (final %.2e, pyramid %.2e)  %s"
          % (variant, diffs[worst], diffs["final"], pyramid, "ok" if ok else "FAIL"))
    if ok:
        return []
    return ["%s-6-2 differs from tfoptflow by %.3g px at %s (tolerance %g px)" % (variant, diffs[worst], worst, tol)]


def _expected(variant: str, ref: str, parity) -> dict:
    """The reference flows of ``variant``; a damaged ``expected.npz`` is one line naming it."""
    path = os.path.join(ref, variant, "expected.npz")
    if os.path.isfile(path) and not zipfile.is_zipfile(path):  # before np.load: numpy 1.18 (TF 1.15's) prints
        raise UserError("cannot read reference file %s: not an .npz (zip) file" % path)  # a traceback on these
    try:
        want = parity.expected(variant, ref)
    except UserError:
        raise
    except Exception as exc:  # BadZipFile, ValueError (pickled / not an npz), OSError, EOFError, KeyError
        raise UserError("cannot read reference file %s: %s: %s"
                        % (path, type(exc).__name__, (str(exc).strip().splitlines() or [""])[0]))
    missing = [k for k in ["final"] + ["pyr%d" % lvl for lvl in parity.LEVELS] if not hasattr(want.get(k), "shape")]
    if missing:  # a member that is no .npy array comes back as raw bytes
        raise UserError("reference file %s holds no %s flow array" % (path, missing[0]))
    return want


@cli.entry("doctor")
def main(cfg: DoctorConfig) -> None:
    """Print the report; every problem is one ``error:`` line and makes the exit status 1."""
    print("pwcflow doctor (device=%s)" % cfg.device.name)
    for what, version in versions(cfg.device):
        print("  %-26s %s" % (what, version))
    problems = check_device(cfg.device)
    if not problems:
        report_bf16(cfg.device)
    if not problems:
        problems = check_parity(cfg)
    sys.stdout.flush()
    for line in problems:
        print("error: %s" % line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()

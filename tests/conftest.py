"""Shared fixtures: where tfoptflow's reference outputs live, the repo root, Hydra composition."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = Path(os.environ.get("PWCFLOW_TFOPTFLOW_REF", ROOT.parent / "shared" / "tfoptflow-ref"))
SPEC = ROOT / "pwcflow" / "reference"  # tfoptflow's variable lists ship with the package (were shared/spec)

# the smallest training run the CLI tests share
TINY = ["model=sm-6-2", "dataset.train_size=24", "dataset.val_size=3", "dataset.size=[64,128]",
        "train.crop=[64,128]", "train.batch_size=2", "train.display_interval=2", "train.val_pairs=3",
        "train.train_eval_pairs=2", "train.image_interval=4"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.npu_bridge import fake_npu_bridge  # noqa: E402,F401 (the stand-in npu_bridge, a fixture for every test)


@pytest.fixture(scope="session")
def ref_dir() -> Path:
    """tfoptflow reference outputs (``shared/tfoptflow-ref``); tests skip where it is absent."""
    if not (REF / "lg" / "pwcnet.ckpt.index").exists():
        pytest.skip("tfoptflow reference outputs not found at %s (bare clone without shared/)" % REF)
    return REF


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """tfoptflow variable lists (``pwcflow/reference``, in the repository: never skipped)."""
    assert (SPEC / "tfoptflow-lg-6-2-variables.txt").exists(), SPEC
    return SPEC


def run_module(module: str, *overrides: str, cwd=None, env=None, timeout: int = 600):
    """Run ``python -m <module> overrides...`` as a user would; returns CompletedProcess."""
    import subprocess

    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", module] + list(overrides), cwd=str(cwd or ROOT),
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def error_line(proc) -> str:
    """Assert a command failed the way users should see it (exit 1, one ``error:`` line, no traceback)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr[-2000:]
    return lines[0]


def random_checkpoint(folder, seed: int, step: int = 1):
    """A randomly initialised sm-6-2 checkpoint saved into ``folder`` (atomically, as training does)."""
    from pwcflow.files import checkpoint
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.model.spec import ModelSpec

    p = FlowPredictor(ModelSpec(name="sm-6-2", dense=False, context_all_levels=False), None, seed=seed)
    try:
        checkpoint.save_atomic(p.sess, p.saver, str(folder), step=step)
    finally:
        p.close()
    return folder


def session_flow(spec, ckpt, x):
    """The checkpoint's flow for the batch ``x`` through a TensorFlow session (the reference for exports)."""
    from pwcflow.inference.predictor import FlowPredictor

    p = FlowPredictor(spec, str(ckpt))
    try:
        return p.predict_batch(x)
    finally:
        p.close()

"""Shared fixtures: tfoptflow's reference (built from the repository), the repo root, Hydra composition."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REF = Path(os.environ.get("PWCFLOW_TFOPTFLOW_REF", ROOT.parent / "shared" / "tfoptflow-ref"))
SPEC = ROOT / "pwcflow" / "reference"  # tfoptflow's variable lists ship with the package (were shared/spec)
# The big tfoptflow reference (../shared/tfoptflow-ref) only ADDS checks where it is present (pair a, per-variable
# gradients); no test needs it: ``ref_dir`` is built from the repository's compact reference.
SHARED_REF = REF if (REF / "lg" / "pwcnet.ckpt.index").exists() and (REF / "sm" / "meta.json").exists() else None

# the smallest training run the CLI tests share
TINY = ["model=sm-6-2", "dataset.train_size=24", "dataset.val_size=3", "dataset.size=[64,128]",
        "train.crop=[64,128]", "train.batch_size=2", "train.display_interval=2", "train.val_pairs=3",
        "train.train_eval_pairs=2", "train.image_interval=4"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from support.npu_bridge import fake_npu_bridge  # noqa: E402,F401 (the stand-in npu_bridge, a fixture for every test)
from support.obs_fixtures import secret, server  # noqa: E402,F401 (the real S3 server on 127.0.0.1 and its keys)


def _reference_meta(variant: str) -> dict:
    """``losses.json``'s tfoptflow numbers in the shape of the big reference's ``meta.json`` (the keys tests read)."""
    from pwcflow.reference import parity

    ref = parity.expected_losses(variant)
    ms, rb, diag = ref["multiscale"], ref["robust"], ref["diagnostics"]
    before = {"loss": ms["total"], "loss_unreg": ms["loss_unreg"], "loss_reg": ms["weight_decay"],
              "epe_metric": diag["epe_metric_padded"]["before"], "levels": diag["multiscale_level_sums_before"],
              "robust_loss_unreg": rb["loss_unreg"], "robust_loss_total": rb["total"]}
    return {"training": {"multiscale": {"before_step": before,
                                        "after_one_step": {"loss": ms["total_after_one_adam_step"],
                                                           "robust_loss": rb["total_after_one_step"]}}}}


def build_reference(folder: Path) -> Path:
    """``folder/{sm,lg}`` laid out like ``shared/tfoptflow-ref`` for pair b, from ``pwcflow/reference`` only.

    Weights: the RECIPE.md checkpoint (sha256-checked); flows: ``expected.npz``; losses: ``losses.json``;
    scaled ground truth: ``gt_scaled.npz`` (DERIVED.md). tfoptflow computed every expected number.
    """
    import json
    import shutil

    import numpy as np

    from pwcflow.reference import parity

    with np.load(str(SPEC / "gt_scaled.npz")) as npz:
        scaled = {k: npz[k] for k in npz.files}
    for variant in ("sm", "lg"):
        d = folder / variant
        parity.make_checkpoint(variant, str(d))
        for i in (1, 2):
            shutil.copy(str(SPEC / ("pair_b_img%d.png" % i)), str(d / ("pair_b_img%d.png" % i)))
        want = parity.expected(variant)
        np.save(str(d / "pair_b_flow.npy"), want["final"])
        for lvl in parity.LEVELS:
            np.save(str(d / ("pair_b_pyr_flow%d.npy" % lvl)), want["pyr%d" % lvl])
            np.save(str(d / ("train_pair_b_gt_scaled_flow%d.npy" % lvl)), scaled["flow%d" % lvl])
        np.save(str(d / "train_pair_b_gt_padded.npy"), parity.ground_truth(parity.load_pair().shape)[0])
        (d / "meta.json").write_text(json.dumps(_reference_meta(variant)))
    return folder


@pytest.fixture(scope="session")
def ref_dir(tmp_path_factory) -> Path:
    """tfoptflow's reference for pair b with checkpoints, built once per session from the repository (never skips)."""
    return build_reference(tmp_path_factory.mktemp("tfoptflow-ref"))


def reference_root(source: str, ref_dir: Path) -> Path:
    """``ref_dir`` for ``"repo"``, the big ``../shared`` reference for ``"shared"`` (only offered where present)."""
    assert source == "repo" or SHARED_REF is not None, source
    return ref_dir if source == "repo" else SHARED_REF


# every reference a parity test runs against: the repository's always, ../shared's as an extended check
REF_SOURCES = ["repo"] + (["shared"] if SHARED_REF is not None else [])


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

"""A real, non-editable install: build the wheel, install it into a fresh venv, run it from a temporary folder.

The venv gets this interpreter's already-installed dependencies through a ``.pth`` line (no download), but
pwcflow itself only from the wheel: the repository is not on the path and ``pwcflow.__file__`` is checked.
"""

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from conftest import ROOT

from pwcflow.reference import recipe

TINY = ["dataset.train_size=4", "dataset.val_size=2", "dataset.size=[64,128]", "train.crop=[64,128]",
        "train.batch_size=1", "train.iterations=1", "train.display_interval=1", "train.save_interval=1",
        "train.val_interval=1", "train.val_pairs=2", "train.train_eval_pairs=1"]
SCRIPTS = ("pwcflow-train", "pwcflow-eval", "pwcflow-predict", "pwcflow-export", "pwcflow-results", "pwcflow-doctor",
           "pwcflow-models")


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run([str(c) for c in cmd], cwd=str(cwd), env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, "%s\n%s\n%s" % (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def _build_wheel(out: Path, env) -> Path:
    """``pip wheel .``: offline with this interpreter's setuptools when it is new enough (>= 61)."""
    import setuptools

    isolation = [] if int(setuptools.__version__.split(".")[0]) < 61 else ["--no-build-isolation"]
    _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", out] + isolation, out, env)
    wheels = list(out.glob("pwcflow-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _fresh_venv(where: Path) -> Path:
    """A new venv (pip included) that sees this interpreter's site-packages after its own."""
    venv.EnvBuilder(with_pip=True).create(str(where))
    bindir = where / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    site = subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   text=True).strip()
    Path(site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.mark.slow
def test_wheel_installs_and_runs_from_any_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    wheel = _build_wheel(tmp_path, env)
    python = _fresh_venv(tmp_path / "venv")
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel], tmp_path, env)
    work = tmp_path / "work"
    work.mkdir()
    code = "import pwcflow, pwcflow.config.compose as c; print(pwcflow.__file__); print(c.CONF_DIR)"
    where = _run([python, "-c", code],
                 work, env).stdout.split()
    site = str(tmp_path / "venv")
    assert where[0].startswith(site) and where[1].startswith(site), where  # not the repository's pwcflow
    assert not where[1].startswith(str(ROOT))
    for script in SCRIPTS:
        assert (Path(python).parent / script).exists(), script
    assert (Path(where[0]).parent / "models.yaml").is_file()  # the registry behind ckpt=NAME ships in the wheel
    ref = Path(where[0]).parent / "reference"
    assert recipe.file_sha256(str(ref / "sm" / "expected.npz")) == recipe.file_sha256(
        str(ROOT / "pwcflow" / "reference" / "sm" / "expected.npz"))
    _run([python, "-c", "from pwcflow.reference import parity; parity.make_checkpoint('sm', 'ck')"], work, env)
    _run([Path(python).parent / "pwcflow-predict", "ckpt=ck", "model=sm-6-2", "img1=%s" % (ref / "pair_b_img1.png"),
          "img2=%s" % (ref / "pair_b_img2.png"), "out=f.flo"], work, env)
    assert (work / "f.flo").stat().st_size == 12 + 120 * 200 * 8
    _run([python, "-m", "pwcflow.train", "experiment=demo"] + TINY, work, env)  # a preset resolves when installed
    assert list((work / "outputs" / "train" / "demo" / "checkpoints").glob("pwcnet.ckpt-1.index"))

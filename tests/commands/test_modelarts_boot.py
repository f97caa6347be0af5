"""A preset-image ModelArts job emulated: a Python 3.7 environment holding only TensorFlow 1.15.5 and its deps (the
image's), ``pip install -r pip-requirements.txt`` as the platform does, the code directory a plain copy of the
repository, and the boot file run the way the platform runs it.

Where the platform's behaviour comes from (Ascend/ModelZoo-TensorFlow,
``TensorFlow/contrib/cv/FaceBoxes_ID1074_for_TensorFlow/model/run00/models/run00/my_env.log``):
line 34 ``PWD=/home/ma-user/modelarts/workspace/device0`` (the working folder), line 78
``PYTHONPATH=/home/ma-user/modelarts/user-job-dir:...`` (the code directory's parent, not the code directory),
``MA_ENGINE_VERSION=tensorflow_1.15-cann_5.0.3-py_3.7-...`` (line 4: Python 3.7); the FaceBoxes job's own
``pip-requirements.txt`` and ``modelarts_entry.py`` (argparse ``--data_url`` / ``--train_url``) beside it.
"""

import fcntl
import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

VENV = ROOT / ".venv-ma"  # git-ignored; built once, reused by later runs on the same checkout
TF_ONLY = VENV / "tf-only.txt"  # `pip freeze` of the environment before pip-requirements.txt
IGNORE = shutil.ignore_patterns(".git", ".venv*", "outputs", "multirun", "__pycache__", "*.pyc", ".pytest_cache",
                                ".ruff_cache", ".tools", "dist", "build", "*.egg-info")
ARGS = ["--experiment=demo", "--model=sm-6-2", "--dataset.train_size=24", "--dataset.val_size=3",
        "--dataset.size=[64,128]", "--train.crop=[64,128]", "--train.batch_size=2", "--train.display_interval=2",
        "--train.val_pairs=3", "--train.train_eval_pairs=2", "--train.image_interval=4", "--train.save_interval=4",
        "--train.val_interval=4"]


def _python37() -> str:
    found = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.7*/bin/python3.7"))) + \
        [p for p in [shutil.which("python3.7")] if p]
    if not found:
        pytest.skip("no Python 3.7 on this machine (the image's interpreter)")
    return found[0]


def _pip(*args: str) -> subprocess.CompletedProcess:
    """pip of the image's environment, run as the platform does: not from the checkout (``-m`` would put the
    working folder, and a build's ``pwcflow.egg-info`` there, on pip's path) and without our PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=1200, cwd=str(VENV), env=env)


def _versions(freeze: str) -> dict:
    pins = dict(ln.split("==", 1) for ln in freeze.splitlines() if "==" in ln)
    return {k.lower(): v for k, v in pins.items()}


@pytest.fixture(scope="session")
def image_env() -> Path:
    """The image's Python: a 3.7 venv with tensorflow==1.15.5 and what it pulls (pinned by constraints/py37.txt)."""
    VENV.parent.mkdir(exist_ok=True)
    with open(str(ROOT / ".venv-ma.lock"), "w") as lock:  # one builder when tests run in parallel processes
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not TF_ONLY.exists():
            shutil.rmtree(str(VENV), ignore_errors=True)
            subprocess.run([_python37(), "-m", "venv", str(VENV)], check=True)
            got = _pip("install", "-q", "tensorflow==1.15.5", "-c", str(ROOT / "constraints" / "py37.txt"))
            if got.returncode:
                shutil.rmtree(str(VENV), ignore_errors=True)
                pytest.skip("could not build the TF 1.15.5 environment: %s" % got.stderr[-500:])
            TF_ONLY.write_text(_pip("freeze").stdout)
    return VENV


def _job(python: Path, code: Path, cwd: Path, argv, log: Path) -> str:
    """The boot file run as the platform runs it: from ``cwd``, only the code dir's parent on PYTHONPATH."""
    cwd.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OBS_", "S3_", "MA_", "HYDRA"))}
    env.update(PYTHONPATH=str(code.parent), PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    with open(str(log), "w") as fh:  # ModelArts captures stdout and stderr into one file
        proc = subprocess.run([str(python), str(code / "modelarts_boot.py")] + list(argv), cwd=str(cwd), env=env,
                              stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    return text


def _awk(log: Path, pattern: str, field: int) -> str:
    """ModelZoo's train_performance_1p.sh extraction, with the real grep and awk."""
    cmd = "grep '%s' '%s' | awk 'END {print $%d}'" % (pattern, log, field)
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_preset_image_job_installs_its_requirements_trains_and_resumes(image_env, tmp_path):
    before = _versions(TF_ONLY.read_text())
    assert before["tensorflow"] == "1.15.5" and "hydra-core" not in before and "omegaconf" not in before
    code = tmp_path / "user-job-dir" / "pwcflow"  # a plain copy named like the repository (a namespace-package trap)
    shutil.copytree(str(ROOT), str(code), ignore=IGNORE)
    got = _pip("install", "-q", "-r", str(code / "pip-requirements.txt"))  # what the platform runs before the job
    assert got.returncode == 0, got.stderr[-2000:]
    after = _versions(_pip("freeze").stdout)
    assert {k: after.get(k) for k in ("tensorflow", "numpy", "protobuf")} == \
        {k: before[k] for k in ("tensorflow", "numpy", "protobuf")}
    assert "pwcflow" not in after  # the job imports the code directory, nothing installed
    python = image_env / "bin" / "python"
    home = tmp_path / "home" / "ma-user" / "modelarts"
    data_url, train_url = home / "inputs" / "data_url_0", home / "outputs" / "train_url_0"
    data_url.mkdir(parents=True)
    argv = ["--data_url=%s/" % data_url, "--train_url=%s/" % train_url] + ARGS
    log1 = tmp_path / "job1.log"
    _job(python, code, home / "workspace" / "device0", argv + ["--train.iterations=8"], log1)
    steps = [int(m) for m in re.findall(r"Iter (\d+) \[Train\]", log1.read_text())]
    assert steps[0] == 2 and steps[-1] == 8, steps
    assert (train_url / "checkpoints" / "pwcnet.ckpt-8.index").exists()
    assert (train_url / "metrics.json").exists() and (train_url / "train.log").exists()
    assert re.match(r"^sec/step=\d+\.\d+,$", _awk(log1, "sec/step=", 10))
    assert re.match(r"^loss=\d+\.\d+,$", _awk(log1, "loss=", 6))
    shutil.rmtree(str(home / "workspace"))  # a restarted container: a fresh working folder, the same train_url
    log2 = tmp_path / "job2.log"
    text = _job(python, code, home / "workspace" / "device0", argv + ["--train.iterations=12"], log2)
    assert "resumed from %s" % (train_url / "checkpoints" / "pwcnet.ckpt-8") in text
    assert [int(m) for m in re.findall(r"Iter (\d+) \[Train\]", text)] == [10, 12]
    assert not list((home / "workspace" / "device0").iterdir())  # nothing written into the working folder

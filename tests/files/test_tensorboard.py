"""TensorBoard logging and tfoptflow's status line (``files/tensorboard.py``), as ModelZoo's grep/awk read it."""

import shutil
import subprocess
import sys

import pytest

from pwcflow.files.tensorboard import emit, status_line

GREP_AWK = shutil.which("grep") and shutil.which("awk")


def _extract(log_path, pattern: str, field: int) -> str:
    """ModelZoo train_performance_1p.sh: ``grep PATTERN LOG | awk 'END {print $N}'`` (real grep and awk)."""
    cmd = "grep '%s' '%s' | awk 'END {print $%d}'" % (pattern, log_path, field)
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not GREP_AWK, reason="grep/awk not installed")
def test_modelzoo_extraction_reads_status_lines_from_a_captured_log(tmp_path):
    log = tmp_path / "train.log"
    code = ("from pwcflow.files.tensorboard import emit, status_line\n"
            "from tqdm import tqdm\nimport sys\n"
            "bar = tqdm(total=3, file=sys.stdout, disable=not sys.stdout.isatty())\n"
            "for i in (1, 2, 3):\n"
            "    bar.update(1)\n"
            "    emit(status_line(i, 10.0 + i, 2.0, 1e-4, 8.0, 0.25 * i, 3 - i))\n")
    with open(str(log), "w") as fh:
        subprocess.run([sys.executable, "-c", code], stdout=fh, check=True)
    text = log.read_bytes().decode()
    assert "\r" not in text
    lines = text.split("\n")  # "\n" only: splitlines() would also split on "\r" and hide progress frames
    assert sum("[Train]:" in ln for ln in lines) == 3
    assert _extract(log, "sec/step=", 10) == "sec/step=0.750,"
    assert _extract(log, "loss=", 6) == "loss=13.00,"


def test_emit_is_one_flushed_line(capsys):
    emit(status_line(5, 1.0, 2.0, 0.1, 3.0, 0.5, 0))
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.endswith("\n") and "\r" not in out

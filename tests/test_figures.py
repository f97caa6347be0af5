"""benchmarks/check_figures.py: the documents' ratios agree with the committed run files, and the checker
catches a ratio its times contradict."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import check_figures  # noqa: E402


def _run(slower, faster, rom=None, mor=None) -> dict:
    """A run file with rows a (slower) and b (faster); ``rom``/``mor`` override the stored ratios."""
    pairs = [x / y for x, y in zip(slower, faster)]
    rom = rom or check_figures.median(slower) / check_figures.median(faster)
    return {"command": "python benchmarks/x.py", "cpu": "test cpu", "cores": 2, "load": {"before": 1.0, "after": 1.5},
            "versions": {"python": "3"}, "date": "2026-12-07T00:00:00+00:00",
            "rows": {"a": {"times_s": slower, "median_s": check_figures.median(slower)},
                     "b": {"times_s": faster, "median_s": check_figures.median(faster)}},
            "ratios": {"a vs b": {"slower": "a", "faster": "b",
                                  "ratio_of_medians": rom,
                                  "median_of_ratios": mor or check_figures.median(pairs)}}}


def _check(tmp_path: Path, run: dict, line: str) -> list:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "r.json").write_text(json.dumps(run))
    doc = tmp_path / "doc.md"
    doc.write_text("# t\n\n" + line + "\n")
    return check_figures.check_docs([doc], tmp_path)


MARK = " <!-- fig: results/r.json a vs b -->"


def test_the_documents_agree_with_the_committed_runs():
    assert check_figures.check_results(ROOT / "benchmarks" / "results") == []
    assert check_figures.check_docs([ROOT / d for d in check_figures.DOCS], ROOT / "benchmarks") == []
    assert check_figures.main([]) == 0


def test_a_correct_line_passes(tmp_path):
    # medians 0.590 / 0.302 = 1.95; per-round ratios 1.95, 1.97, 1.94: median 1.95 (same at 2 digits)
    run = _run([0.590, 0.600, 0.582], [0.302, 0.305, 0.300])
    assert _check(tmp_path, run, "| lg | 0.590 s / 0.302 s | **1.95x**" + MARK + " |") == []


def test_a_ratio_its_times_contradict_fails(tmp_path):
    run = _run([0.590, 0.600, 0.582], [0.302, 0.305, 0.300])
    problems = _check(tmp_path, run, "| lg | 0.590 s / 0.302 s | **1.88x**" + MARK + " |")
    assert any("ratio of medians 1.9536 is not on the line" in p for p in problems), problems
    assert any("1.88x on this line is none of its markers' ratios" in p for p in problems), problems


def test_a_time_that_is_not_the_median_fails(tmp_path):
    run = _run([0.590, 0.600, 0.582], [0.302, 0.305, 0.300])
    problems = _check(tmp_path, run, "0.600 s / 0.302 s: 1.95x" + MARK)
    assert problems == ["%s:3: results/r.json 'a vs b': the slower row's median 0.5900 s is not on the line"
                        % (tmp_path / "doc.md")]


def test_a_run_file_whose_ratio_is_not_its_times_fails(tmp_path):
    run = _run([1.443, 1.5, 1.4], [1.134, 1.2, 1.1], rom=1.16)
    problems = _check(tmp_path, run, "1.443 s / 1.134 s: 1.16x" + MARK)
    assert any("ratio_of_medians 1.16, its times give 1.272487" in p for p in problems), problems
    assert check_figures.check_results(tmp_path / "results") != []


def test_both_ratios_are_printed_where_they_differ(tmp_path):
    # medians 2.0 / 1.0 = 2.00; per-round 1.0/1.0, 2.0/0.5, 3.0/2.0 -> 1.00, 4.00, 1.50: median 1.50
    run = _run([1.0, 2.0, 3.0], [1.0, 0.5, 2.0])
    line = "2.000 s / 1.000 s: 2.00x" + MARK
    assert any("median of ratios 1.50x differs" in p for p in _check(tmp_path, run, line))
    (tmp_path / "results" / "r.json").unlink()
    (tmp_path / "results").rmdir()
    assert _check(tmp_path, run, "2.000 s / 1.000 s: 2.00x (median of per-round ratios 1.50x)" + MARK) == []


@pytest.mark.parametrize("line, ok", [("forward 1.38x faster", False), ("goal: 1.50x <!-- target -->", True),
                                      ("earlier 0.9 s / 0.5 s: 1.80x <!-- not measured -->", True),
                                      ("a 448x1024 pair, 4096x4096 matmul", True)])
def test_unmarked_ratios_fail(tmp_path, line, ok):
    doc = tmp_path / "doc.md"
    doc.write_text(line + "\n")
    assert (check_figures.check_docs([doc], tmp_path) == []) == ok


def test_a_missing_run_file_fails(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("1.000 s / 0.500 s: 2.00x" + MARK + "\n")
    assert any("No such file" in p for p in check_figures.check_docs([doc], tmp_path))


def test_record_run_writes_what_the_checker_accepts(tmp_path):
    import common  # benchmarks/common.py: the writer the benchmarks call

    path = common.record_run(tmp_path / "r.json", "python benchmarks/x.py --rounds 3",
                             {"a": [1.0, 2.0, 3.0], "b": [1.0, 0.5, 2.0]}, {"a vs b": ("a", "b")}, 1.25, 400.0)
    run = json.loads(path.read_text())
    assert check_figures.check_run(run) == []
    assert run["ratios"]["a vs b"]["ratio_of_medians"] == 2.0 and run["ratios"]["a vs b"]["median_of_ratios"] == 1.5
    assert run["load"]["before"] == 1.25 and isinstance(run["load"]["after"], float)
    assert run["cores"] >= 1 and run["cpu"] and run["versions"]["python"] and run["matmul_peak_gflops"] == 400.0

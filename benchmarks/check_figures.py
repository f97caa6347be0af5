"""Re-derive every measured ratio in README.md, benchmarks/RESULTS*.md and docs/performance.md from the
committed run files (``benchmarks/results/*.json``, written by ``common.record_run``); fail on a mismatch.

    python benchmarks/check_figures.py [FILE ...]

A line that quotes a measured ratio carries ``<!-- fig: results/<run>.json <ratio name> -->`` (one per ratio).
For each marker the run file must be self-consistent (``median_s`` is the median of ``times_s``;
``ratio_of_medians`` is the slower row's median over the faster's; ``median_of_ratios`` the median of the
per-round quotients) and the line must show, at the digits it prints, both rows' median times (``N.NNN s``) and
the ratio of medians (``N.NNx``), and also the median of ratios where the two differ at those digits. Every
``N.NNx`` on a marked line must be one of its markers' ratios. A line with an ``N.NNx`` and no fig marker
fails unless it says ``<!-- target -->`` (a goal, not a measurement) or ``<!-- not measured -->`` (history
whose per-round data was not kept); inline code is ignored. Exit status 1 and one ``file:line: problem`` line
per problem.
"""

import json
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "benchmarks/RESULTS.md", "benchmarks/RESULTS-cpu-intel-amx.md", "docs/performance.md")
MARKER = re.compile(r"<!--\s*fig:\s*(\S+\.json)\s+(.+?)\s*-->")
EXEMPT = re.compile(r"<!--\s*(target|not measured)\s*-->")
RATIO = re.compile(r"(?<![\d.])(\d+\.\d+)x(?!\d)")
SECONDS = re.compile(r"(?<![\d.])(\d+\.\d+)\s?s\b")
CODE = re.compile(r"`[^`]*`")
TOLERANCE = 2e-6


def median(xs: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    s = sorted(float(x) for x in xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2.0


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def check_run(data: dict) -> List[str]:
    """Problems of one run file: missing fields, and stored medians/ratios that its per-round times contradict."""
    problems = ["missing %r" % k for k in ("command", "cpu", "cores", "load", "versions", "date", "rows", "ratios")
                if k not in data]
    if problems:
        return problems
    for k in ("before", "after"):
        if not isinstance(data["load"].get(k), (int, float)):
            problems.append("load.%s is not a number" % k)
    for name, row in data["rows"].items():
        if not row.get("times_s"):
            problems.append("row %r has no times_s" % name)
        elif not _close(row["median_s"], median(row["times_s"])):
            problems.append("row %r: median_s %g is not the median of times_s (%g)"
                            % (name, row["median_s"], median(row["times_s"])))
    for name, r in data["ratios"].items():
        slow, fast = data["rows"].get(r.get("slower")), data["rows"].get(r.get("faster"))
        if not slow or not fast or not slow.get("times_s") or not fast.get("times_s"):
            problems.append("ratio %r names a missing row" % name)
            continue
        a, b = slow["times_s"], fast["times_s"]
        if len(a) != len(b):
            problems.append("ratio %r: rows have different numbers of rounds" % name)
            continue
        want = {"ratio_of_medians": median(a) / median(b), "median_of_ratios": median([x / y for x, y in zip(a, b)])}
        for key, value in want.items():
            if not _close(r.get(key, float("nan")), value):
                problems.append("ratio %r: %s %s, its times give %.6f" % (name, key, r.get(key), value))
    return problems


def _shown(value: float, printed: Sequence[str]) -> Optional[str]:
    """The printed number that ``value`` rounds to at that number's digits, or None."""
    for p in printed:
        digits = len(p.split(".")[1])
        if "%.*f" % (digits, value) == p:
            return p
    return None


def check_line(line: str, load_run) -> List[str]:
    """Problems of one document line (``load_run(path)`` returns a run's dict or raises with a message).
    Inline code (`...`) is left out: it shows commands and the marker syntax, not figures."""
    line = CODE.sub("", line)
    markers = MARKER.findall(line)
    text = MARKER.sub("", line)
    ratios, seconds = RATIO.findall(text), SECONDS.findall(text)
    if not markers:
        return ["ratio %sx with no fig marker (or <!-- target --> / <!-- not measured -->)" % ratios[0]] \
            if ratios and not EXEMPT.search(line) else []
    problems, explained = [], set()
    for path, name in markers:
        try:
            run = load_run(path)
        except (OSError, ValueError) as e:
            problems.append("%s: %s" % (path, e))
            continue
        bad = check_run(run)
        if bad:
            problems += ["%s: %s" % (path, b) for b in bad]
            continue
        r = run["ratios"].get(name)
        if r is None:
            problems.append("%s has no ratio %r" % (path, name))
            continue
        for side in ("slower", "faster"):
            t = run["rows"][r[side]]["median_s"]
            if _shown(t, seconds) is None:
                problems.append("%s %r: the %s row's median %.4f s is not on the line" % (path, name, side, t))
        rom = _shown(r["ratio_of_medians"], ratios)
        if rom is None:
            problems.append("%s %r: ratio of medians %.4f is not on the line" % (path, name, r["ratio_of_medians"]))
            continue
        explained.add(rom)
        digits = len(rom.split(".")[1])
        mor = "%.*f" % (digits, r["median_of_ratios"])
        if mor != rom and mor not in ratios:
            problems.append("%s %r: median of ratios %sx differs from the ratio of medians %sx and is not printed"
                            % (path, name, mor, rom))
        explained.add(mor)
    problems += ["ratio %sx on this line is none of its markers' ratios" % x for x in ratios if x not in explained]
    return problems


def check_docs(files: Sequence[Path], results_root: Path) -> List[str]:
    """``file:line: problem`` for every problem in ``files``; run paths in markers are relative to
    ``results_root`` (the ``benchmarks/`` folder)."""
    cache: Dict[str, dict] = {}

    def load_run(path: str) -> dict:
        if path not in cache:
            cache[path] = json.loads((results_root / path).read_text())
        return cache[path]

    out = []
    for f in files:
        for no, line in enumerate(Path(f).read_text().splitlines(), 1):
            out += ["%s:%d: %s" % (f, no, p) for p in check_line(line, load_run)]
    return out


def check_results(folder: Path) -> List[str]:
    """``file: problem`` for every committed run file in ``folder`` that is not self-consistent."""
    out = []
    for f in sorted(Path(folder).glob("*.json")):
        try:
            out += ["%s: %s" % (f, p) for p in check_run(json.loads(f.read_text()))]
        except ValueError as e:
            out.append("%s: %s" % (f, e))
    return out


def main(argv: Sequence[str]) -> int:
    files = [Path(a) for a in argv] or [ROOT / d for d in DOCS]
    problems = check_docs(files, ROOT / "benchmarks") + check_results(ROOT / "benchmarks" / "results")
    for p in problems:
        print(p)
    if not problems:
        print("figures ok: %d file(s)" % len(files))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

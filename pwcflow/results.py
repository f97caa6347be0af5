"""``python -m pwcflow.results outputs/ [more run dirs] [--out DIR]``: one table of all runs.

The command line becomes a ``ResultsConfig`` (``parse_args``) before anything runs; a bad one is one
``error:`` line naming the option, exit 1, like the Hydra commands' ``config.load``.

Finds every ``metrics.json`` under the given paths (single runs and multirun sweeps, training and
eval runs), and writes ``results.md``, ``results.csv`` (beside the seed's figures when the run came
from an experiment preset) and ``val_epe.png`` (validation EPE over steps, one line per training run).
"""

import csv
import json
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import yaml

from pwcflow import cli
from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight

COLUMNS = ("run", "kind", "model", "dataset", "split", "step", "epe", "fl_all", "epe_matched", "epe_unmatched",
           "best_epe", "seed_epe", "paper_epe")
SEED_TABLE = (  # the seed README's results table: (row, Sintel training clean EPE, device count, batch, iterations)
    ("pretrained model", 2.60, 2, 16, 1200000),
    ("Report in paper", 1.70, None, 4, None),
    ("Reproduce on GPU", 1.76, 1, 4, 200000),
    ("Reproduce on Ascend 910", 1.76, 1, 4, 200000),
)


def find_runs(paths: List[str]) -> List[str]:
    """Run dirs (folders holding ``metrics.json``) under ``paths``, sorted."""
    runs = set()
    for path in paths:
        if not os.path.exists(path):
            raise UserError("no such file or directory: %s" % path)
        for folder, _, files in os.walk(path):
            if "metrics.json" in files:
                runs.add(os.path.abspath(folder))
    return sorted(runs)


NUMBERS = ("epe", "val_epe", "train_split_epe", "best_epe", "step", "best_step")


def _bad(path: str, why: str) -> UserError:
    return UserError("cannot use %s: %s (fix or remove it)" % (path, why))


def _load_metrics(run: str) -> Dict:
    """``metrics.json`` of a run, checked: an object whose headline values are numbers or null."""
    path = os.path.join(run, "metrics.json")
    try:
        with open(path) as fh:
            m = json.load(fh)
    except ValueError as exc:
        raise _bad(path, "not valid JSON (%s)" % str(exc).splitlines()[0])
    if not isinstance(m, dict):
        raise _bad(path, "not a JSON object")
    for key in NUMBERS:
        if not (m.get(key) is None or isinstance(m[key], (int, float)) and not isinstance(m[key], bool)):
            raise _bad(path, "%s is %r, not a number" % (key, m[key]))
    history = m.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) and isinstance(h.get("step"), int)
                                                for h in history):
        raise _bad(path, "history must be a list of {step: ..., val_epe: ...} objects")
    return m


def _config(run: str) -> Dict:
    path = os.path.join(run, ".hydra", "config.yaml")
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as fh:
            cfg = yaml.safe_load(fh) or {}
    except yaml.YAMLError as exc:
        raise _bad(path, "not valid YAML (%s)" % " ".join(str(exc).split())[:120])
    if not isinstance(cfg, dict):
        raise _bad(path, "not a mapping")
    for key in ("model", "dataset", "seed_row"):
        if not isinstance(cfg.get(key) or {}, dict):
            raise _bad(path, "%s is %r, not a mapping" % (key, cfg[key]))
    return cfg


def summarize(run: str) -> Dict[str, object]:
    """One table row for a run dir (training or eval)."""
    m = _load_metrics(run)
    cfg = _config(run)
    seed = cfg.get("seed_row") or {}
    kind = "train" if "history" in m else "eval"
    return {
        "run": run, "kind": kind, "model": (cfg.get("model") or {}).get("name"),
        "dataset": (cfg.get("dataset") or {}).get("name") or m.get("dataset"),
        "split": m.get("val_split") or m.get("best_by") if kind == "train" else m.get("split"),
        "step": m.get("step"),
        "epe": m.get("val_epe") if kind == "train" else m.get("epe"),
        "fl_all": m.get("fl_all"), "epe_matched": m.get("epe_matched"), "epe_unmatched": m.get("epe_unmatched"),
        "best_epe": m.get("best_epe"), "seed_epe": seed.get("expected_epe"), "paper_epe": seed.get("paper_epe"),
        "history": m.get("history", []),
    }


def _cell(v) -> str:
    if v is None:
        return ""
    return "%.3f" % v if isinstance(v, float) else str(v)


def markdown(rows: List[Dict[str, object]], base: str) -> str:
    """The runs table plus the seed's own table for comparison."""
    lines = ["# pwcflow results", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [os.path.relpath(str(r["run"]), base)] + [_cell(r[c]) for c in COLUMNS[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "EPE of training runs is the latest validation EPE (held-out split, or the training split where the",
              "data set has none, as the seed reported); eval runs give the all-pixel average EPE of their split.",
              "", "## The seed's table (MPI-Sintel training clean, average EPE)", "",
              "| row | EPE | devices | batch | iterations |", "|---|---|---|---|---|"]
    for row, epe, dev, batch, iters in SEED_TABLE:
        lines.append("| %s | %.2f | %s | %s | %s |" % (row, epe, dev or "?", batch, iters or "?"))
    return "\n".join(lines) + "\n"


def plot(rows: List[Dict[str, object]], path: str, size=(480, 800)) -> Optional[str]:
    """Validation EPE over steps, one coloured line per training run, drawn with OpenCV (no matplotlib)."""
    series = [(os.path.basename(str(r["run"])), [(h["step"], h.get("val_epe") if h.get("val_epe") is not None
                                                   else h.get("train_split_epe")) for h in r["history"]])
              for r in rows if r["history"]]
    series = [(n, [(s, e) for s, e in pts if e is not None]) for n, pts in series]
    series = [(n, pts) for n, pts in series if pts]
    if not series:
        return None
    h, w = size
    img = np.full((h, w, 3), 255, np.uint8)
    left, right, top, bottom = 60, w - 20, 20, h - 40
    steps = [s for _, pts in series for s, _ in pts]
    epes = [e for _, pts in series for _, e in pts]
    s0, s1 = min(steps), max(max(steps), min(steps) + 1)
    e0, e1 = 0.0, max(epes) * 1.1 or 1.0
    cv2.rectangle(img, (left, top), (right, bottom), (0, 0, 0), 1)

    def xy(s, e):
        return (int(left + (s - s0) / (s1 - s0) * (right - left)), int(bottom - (e - e0) / (e1 - e0) * (bottom - top)))

    for i in range(5):
        e = e0 + (e1 - e0) * i / 4
        cv2.putText(img, "%.2f" % e, (5, xy(s0, e)[1] + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "step %d" % s0, (left, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "step %d" % s1, (right - 90, h - 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, "validation EPE", (w // 2 - 60, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    for i, (name, pts) in enumerate(series):
        color = tuple(int(c) for c in cv2.cvtColor(np.uint8([[[int(180 * i / len(series)), 255, 200]]]),
                                                   cv2.COLOR_HSV2RGB)[0, 0])
        pix = np.array([xy(s, e) for s, e in pts], np.int32)
        cv2.polylines(img, [pix], False, color, 2)
        for p in pix:
            cv2.circle(img, tuple(int(v) for v in p), 3, color, -1)
        cv2.putText(img, name[:40], (left + 10, top + 18 * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1)
    flowio.write_image(path, img)
    return path


def collect(paths: List[str], out: str) -> List[Dict[str, object]]:
    """Write results.md, results.csv and val_epe.png into ``out``; return the rows."""
    runs = find_runs(paths)
    if not runs:
        raise UserError("no metrics.json found under %s" % ", ".join(paths))
    rows = [summarize(r) for r in runs]
    out = preflight.preflight_dir(out, "--out")
    # all three files or none: a failure leaves an older report as it was
    atomic.atomic_files([(os.path.join(out, "results.md"), lambda tmp: _write_text(tmp, markdown(rows, out))),
                          (os.path.join(out, "results.csv"), lambda tmp: _write_csv(tmp, rows)),
                          (os.path.join(out, "val_epe.png"), lambda tmp: plot(rows, tmp))])
    return rows


def _write_text(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _write_csv(path: str, rows: List[Dict[str, object]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r[c] if r[c] is not None else "" for c in COLUMNS])


USAGE = "usage: python -m pwcflow.results PATH [PATH ...] [--out DIR]"


@dataclass(frozen=True)
class ResultsConfig:
    """The command line: run dirs (or folders holding them) and where the report goes."""

    paths: Tuple[str, ...]
    out: str


def parse_args(argv: List[str]) -> ResultsConfig:
    """``argv`` as a ``ResultsConfig``; a one-line ``UserError`` naming the bad option (``--out`` defaults to
    the first path: where a report of one folder naturally goes)."""
    paths: List[str] = []
    out: Optional[str] = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--out" or arg.startswith("--out="):
            value = arg[len("--out="):] if "=" in arg else (argv[i + 1] if i + 1 < len(argv) else "")
            i += 0 if "=" in arg else 1
            if not value or value.startswith("--"):
                raise UserError("bad setting --out: needs a folder (%s)" % USAGE)
            out = value
        elif arg.startswith("-") and arg != "-":
            raise UserError("bad setting %s: not an option of pwcflow.results (%s)" % (arg.split("=", 1)[0], USAGE))
        else:
            paths.append(arg)
        i += 1
    if not paths:
        raise UserError("missing required setting: name one or more run dirs (%s)" % USAGE)
    return ResultsConfig(paths=tuple(paths), out=out if out is not None else paths[0])


def main(argv: Optional[List[str]] = None) -> None:
    """Command-line entry point."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print("%s\n\n%s" % (USAGE, __doc__.strip()))
        return
    cfg = cli.guard(lambda: parse_args(argv))
    rows = cli.guard(lambda: collect(list(cfg.paths), cfg.out))
    print(open(os.path.join(cfg.out, "results.md")).read())
    print("%d runs -> %s" % (len(rows), os.path.join(cfg.out, "results.md")))


if __name__ == "__main__":
    main()

"""``record_run``: one benchmark run as ``benchmarks/results/<run>.json`` in the figures format (issue #26):
command, CPU, cores, load before/after, versions, date, per-row times with their median, and ratios (ratio of
medians and median of per-round ratios) that README/RESULTS lines cite with ``<!-- fig: results/<run>.json
<ratio-name> -->``. Stand-in until ``common.record_run`` lands; the same keys."""

import datetime
import json
import os
import platform
import sys
from typing import Dict, Optional, Sequence, Tuple

import common


def record_run(run: str, rows: Dict[str, Sequence[float]], ratios: Dict[str, Tuple[str, str]],
               load_before: float, versions: Optional[Dict[str, str]] = None,
               matmul_peak_gflops: Optional[Dict[str, float]] = None, extra: Optional[dict] = None) -> str:
    """Write the run; ``ratios``: name -> (slower row, faster row). Returns the path."""
    from pwcflow.tf1 import TF_VERSION

    payload = {"command": " ".join(["python"] + [os.path.relpath(sys.argv[0], str(common.ROOT))] + sys.argv[1:]),
               "cpu": common.cpu_model(), "cores": os.cpu_count(),
               "load": {"before": float(load_before), "after": os.getloadavg()[0]},
               "versions": dict({"python": platform.python_version(), "tensorflow": TF_VERSION}, **(versions or {})),
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "rows": {k: {"times_s": [float(t) for t in v], "median_s": common.median(v)} for k, v in rows.items()},
               "ratios": {k: {"slower": s, "faster": f,
                              "ratio_of_medians": common.median(rows[s]) / common.median(rows[f]),
                              "median_of_ratios": common.paired_ratio(rows[s], rows[f])}
                          for k, (s, f) in ratios.items()}}
    if matmul_peak_gflops is not None:
        payload["matmul_peak_gflops"] = matmul_peak_gflops
    if extra:
        payload["extra"] = extra
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    path = common.RESULTS / (run + ".json")
    path.write_text(json.dumps(payload, indent=2, default=common._plain) + "\n")
    return str(path)

"""What an evaluation run leaves for people: ``metrics.md``, ``contact_sheet.png`` and ``index.html``.

The contact sheet shows a few pairs spread over the data set, one row each:
frame 1 | ground truth | prediction | error map (or frame 1 | prediction without ground truth),
thumbnails labelled with the pair's name and EPE.
"""

import html
import os
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np

from pwcflow.data import flowio, viz

THUMB_WIDTH = 256
LABEL_HEIGHT = 20
ERROR_MAX_PX = 10.0  # error maps saturate here (viz.error_map default)


def _fmt(v: Optional[float], pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return "%.2f %%" % (100.0 * v) if pct else "%.3f" % v


def title(summary: Dict) -> str:
    """One line saying what was evaluated and whether it is training data or held-out."""
    return "%s on %s, split %s (%s)" % (summary["model"], summary["dataset"], summary["split"], summary["split_role"])


def summary_rows(summary: Dict) -> List[List[str]]:
    """[metric, value] rows of the headline numbers."""
    rows = [["pairs", str(summary["pairs"])]]
    if summary.get("epe") is None:
        return rows
    rows.append(["EPE (all pixels)", _fmt(summary["epe"])])
    rows += [["EPE %s" % band, _fmt(v)] for band, v in summary["bands"].items()]
    rows += [["outliers > %s" % px, _fmt(v, pct=True)] for px, v in summary["outliers"].items()]
    return rows + benchmark_rows(summary)


def benchmark_rows(summary: Dict) -> List[List[str]]:
    """KITTI's Fl (Fl-noc when evaluated on ``flow_noc``) and Sintel's matched/unmatched EPE, where present."""
    rows = []
    if summary.get("fl_all") is not None:
        rows.append(["Fl-%s (EPE > 3 px and > 5 %%)" % ("noc" if summary.get("fl_gt") == "noc" else "all"),
                     _fmt(summary["fl_all"], pct=True)])
    for key, label in (("epe_matched", "EPE matched (visible)"), ("epe_unmatched", "EPE unmatched (occluded)")):
        if summary.get(key) is not None:
            rows.append([label, _fmt(summary[key])])
    return rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| %s |" % " | ".join(header), "|" + "---|" * len(header)]
    return "\n".join(lines + ["| %s |" % " | ".join(r) for r in rows])


def markdown(summary: Dict) -> str:
    """``metrics.md``: headline table and per-scene EPE."""
    parts = ["# %s" % title(summary), "",
             "checkpoint: `%s`" % summary["ckpt"], "",
             _md_table(["metric", "value"], summary_rows(summary))]
    if summary.get("per_scene"):
        parts += ["", "## EPE per scene", "",
                  _md_table(["scene", "EPE"], [[s, _fmt(v)] for s, v in summary["per_scene"].items()])]
    if summary.get("flo_dir"):
        parts += ["", "Flow files: `%s`" % summary["flo_dir"]]
    parts += ["", "EPE = sum of per-pixel end-point errors / number of pixels over the whole split (as Sintel)."]
    return "\n".join(parts) + "\n"


def _thumb(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    size = (THUMB_WIDTH, max(1, int(round(h * THUMB_WIDTH / float(w)))))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def _label(text: str, width: int, x: int = 4, strip: Optional[np.ndarray] = None) -> np.ndarray:
    strip = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8) if strip is None else strip
    cv2.putText(strip, text, (x, LABEL_HEIGHT - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def panels(img1: np.ndarray, flow: np.ndarray, gt: Optional[np.ndarray], valid: Optional[np.ndarray],
           max_flow: Optional[float] = None) -> List[np.ndarray]:
    """Full-size [frame 1, ground truth, prediction, error] (or [frame 1, prediction]) RGB pictures.

    Prediction and ground truth share one colour scale (``max_flow``, else the ground truth's largest motion).
    """
    if gt is None:
        return [img1, viz.flow_to_color(flow, max_flow)]
    scale = max_flow or max(float(np.sqrt((gt.astype(np.float64) ** 2).sum(-1)).max()), 1e-5)
    return [img1, viz.flow_to_color(gt, scale), viz.flow_to_color(flow, scale),
            viz.error_map(flow, gt, valid, ERROR_MAX_PX)]


class ContactSheet:
    """Collects thumbnail rows, then writes ``contact_sheet.png``."""

    def __init__(self) -> None:
        self.rows = []  # type: List[np.ndarray]

    def add(self, name: str, epe: Optional[float], pictures: Sequence[np.ndarray]) -> None:
        """Add one pair's row from its full-size ``panels``."""
        row = viz.side_by_side([_thumb(p) for p in pictures])
        text = name if epe is None else "%s   EPE %.2f px" % (name, epe)
        self.rows.append(np.concatenate([_label(text, row.shape[1]), row], axis=0))

    def write(self, path: str) -> Optional[str]:
        """Write the sheet (rows stacked, a header naming the columns); None if there are no rows."""
        if not self.rows:
            return None
        width = max(r.shape[1] for r in self.rows)
        cols = ["frame 1", "ground truth", "prediction", "error 0-%g px" % ERROR_MAX_PX]
        if self.rows[0].shape[1] < 3 * THUMB_WIDTH:
            cols = ["frame 1", "prediction"]
        header = np.full((LABEL_HEIGHT, width, 3), 255, np.uint8)
        for i, col in enumerate(cols):
            _label(col, width, x=4 + i * (THUMB_WIDTH + 4), strip=header)
        padded = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in self.rows]
        flowio.write_image(path, np.concatenate([header] + padded, axis=0))
        return path


def write_html(path: str, summary: Dict, sheet: Optional[str], pictures: Sequence[str]) -> str:
    """``index.html``: headline table, per-scene table, the contact sheet and links to per-pair pictures."""
    folder = os.path.dirname(os.path.abspath(path))

    def rel(p: str) -> str:
        return html.escape(os.path.relpath(p, folder).replace(os.sep, "/"))

    def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
        head = "".join("<th>%s</th>" % html.escape(h) for h in header)
        body = "".join("<tr>%s</tr>" % "".join("<td>%s</td>" % html.escape(c) for c in r) for r in rows)
        return "<table><tr>%s</tr>%s</table>" % (head, body)

    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>%s</title>" % html.escape(title(summary)),
             "<style>body{font-family:sans-serif}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}</style></head><body>",
             "<h1>%s</h1><p>checkpoint: <code>%s</code></p>" % (html.escape(title(summary)),
                                                             html.escape(str(summary["ckpt"]))),
             table(["metric", "value"], summary_rows(summary))]
    if summary.get("per_scene"):
        parts += ["<h2>EPE per scene</h2>",
                  table(["scene", "EPE"], [[s, _fmt(v)] for s, v in summary["per_scene"].items()])]
    if sheet:
        parts += ["<h2>Contact sheet</h2><img src='%s' alt='contact sheet'>" % rel(sheet)]
    if pictures:
        parts += ["<h2>Pictures</h2><ul>%s</ul>" % "".join(
            "<li><a href='%s'>%s</a></li>" % (rel(p), html.escape(os.path.relpath(p, folder))) for p in pictures)]
    parts.append("</body></html>\n")
    text = "\n".join(parts)
    with open(path, "w") as fh:
        fh.write(text)
    return path

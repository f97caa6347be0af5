"""Benchmark submissions and benchmark-only inputs for ``pwcflow.eval``.

- KITTI 2012 / 2015: ``<dir>/flow/NNNNNN_10.png`` (16-bit 3-channel PNG: ``u*64+2^15, v*64+2^15, valid``)
  and a zip of that tree, ready to upload.
- MPI-Sintel: the official bundler turns ``flow/<pass>/<scene>/frame_NNNN.flo`` into one ``.lzma`` file;
  ``bundler_command`` gives the exact command line, ``run_bundler`` runs it.
- Sintel's ``training/occlusions/<scene>/frame_NNNN.png`` masks for matched/unmatched EPE.
"""

import os
import subprocess
import zipfile
from typing import Callable, List, Optional, Sequence

import cv2
import numpy as np

from pwcflow.errors import UserError
from pwcflow.files.atomic import atomic_file


def zip_tree(folder: str, zip_path: str) -> int:
    """Zip every file under ``folder`` (names relative to it, e.g. ``flow/000000_10.png``) atomically; returns
    the number of files."""
    files = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
                   if not f.startswith(".tmp-"))
    with atomic_file(zip_path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel in files:
            zf.write(os.path.join(folder, rel), rel.replace(os.sep, "/"))
    return len(files)


def bundler_command(bundler: str, flo_dir: str, passes: Sequence[str], out: str) -> List[str]:
    """Sintel's ``bundler <clean dir> <final dir> <out.lzma>`` for the exported tree."""
    missing = [p for p in ("clean", "final") if p not in passes]
    if missing:
        raise UserError("Sintel's bundler needs both passes; dataset.passes lacks %s" % ", ".join(missing))
    return [bundler, os.path.join(flo_dir, "clean"), os.path.join(flo_dir, "final"), out]


def run_bundler(cmd: List[str]) -> None:
    """Run the bundler; a missing or failing bundler is a one-line ``UserError``."""
    if not os.path.isfile(cmd[0]):
        raise UserError("bundler not found: %s" % cmd[0])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise UserError("cannot run the bundler %s: %s" % (cmd[0], exc))
    if proc.returncode != 0 or not os.path.isfile(cmd[-1]):
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise UserError("bundler %s failed (exit %d)%s" % (cmd[0], proc.returncode, ": " + tail[-1] if tail else ""))


def sintel_occlusions(root: Optional[str]) -> Optional[Callable[[str], Optional[np.ndarray]]]:
    """A lookup ``name -> occluded mask`` for Sintel sample names ``<pass>/<scene>/frame_NNNN`` when
    ``<root>/training/occlusions/`` exists (white = occluded), else None."""
    base = os.path.join(root or "", "training", "occlusions")
    if not root or not os.path.isdir(base):
        return None

    def lookup(name: str) -> Optional[np.ndarray]:
        path = os.path.join(base, *name.split("/")[-2:]) + ".png"
        if not os.path.isfile(path):
            raise UserError("occlusion mask missing: %s" % path)
        mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise UserError("cannot read occlusion mask: %s" % path)
        return mask > 127

    return lookup

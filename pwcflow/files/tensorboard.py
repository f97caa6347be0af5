"""TensorBoard logging (scalars and images, TF 1.15 and 2.x alike) and tfoptflow's status line."""

import datetime
import sys
from typing import Dict, Optional

import numpy as np

from pwcflow.tf1 import tf


class Board:
    """A TensorBoard event writer for one run dir (scalars and RGB images written as protos).

    ``logdir=None`` gives a board that writes nothing (non-chief workers).
    """

    def __init__(self, logdir: Optional[str]):
        self.writer = tf.summary.FileWriter(logdir) if logdir else None

    def scalars(self, step: int, values: Dict[str, float]) -> None:
        """Write scalar values at ``step``."""
        if self.writer is None:
            return
        summary = tf.Summary(value=[tf.Summary.Value(tag=k, simple_value=float(v)) for k, v in values.items()])
        self.writer.add_summary(summary, step)

    def image(self, step: int, tag: str, rgb: np.ndarray) -> None:
        """Write one RGB uint8 image at ``step``."""
        import cv2

        if self.writer is None:
            return
        ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
        img = tf.Summary.Image(height=rgb.shape[0], width=rgb.shape[1], colorspace=3,
                               encoded_image_string=png.tobytes())
        self.writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag=tag, image=img)]), step)

    def flush(self) -> None:
        """Push pending events to disk."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        """Flush and close."""
        if self.writer is not None:
            self.writer.close()


def status_line(step: int, loss: float, epe: float, lr: float, samples_per_sec: float, sec_per_step: float,
                remaining_steps: int, now: Optional[datetime.datetime] = None, loss_scale: float = 1.0,
                skipped: int = 0) -> str:
    """tfoptflow's training status line; Ascend's ModelZoo scripts parse fields 6 (loss) and 10 (sec/step), so
    the loss scale and the steps skipped for overflow come after field 10.

    ``2026-11-24 08:00:00 Iter 1000 [Train]: loss=12.34, epe=3.45, lr=0.000100, samples/sec=34.2,
    sec/step=0.936, loss_scale=65536, skipped=0, eta=1 day, 2:03:04``
    """
    now = now or datetime.datetime.now()
    eta = datetime.timedelta(seconds=int(round(max(remaining_steps, 0) * sec_per_step)))
    return ("%s Iter %d [Train]: loss=%.2f, epe=%.2f, lr=%f, samples/sec=%.1f, sec/step=%.3f, loss_scale=%.10g, "
            "skipped=%d, eta=%s") % (now.strftime("%Y-%m-%d %H:%M:%S"), step, loss, epe, lr, samples_per_sec,
                                     sec_per_step, loss_scale, skipped, eta)


def interactive() -> bool:
    """True when stdout is a terminal; a file-captured log (ModelArts, ``> LOG``) gets no progress bar frames."""
    return bool(getattr(sys.stdout, "isatty", None)) and sys.stdout.isatty()


def emit(line: str) -> None:
    """Print one status line as a line of its own (above a live progress bar on a terminal), flushed at once,
    so ``grep``/``awk`` on a captured log (Ascend ModelZoo's train_performance_1p.sh) see every line."""
    if interactive():
        from tqdm import tqdm

        tqdm.write(line, file=sys.stdout)
    else:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()

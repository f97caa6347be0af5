"""Live input: ``python -m pwcflow.predict ckpt=NAME input=camera:0`` (or a stream URL, or ``live.enabled=true``
with a video file): the flow between consecutive frames as they arrive.

Frames come through ``frames.open_capture`` / ``capture_frames``, the capture path of video files. Where OpenCV
has a GUI and there is a display, a window shows the frame beside its colour flow with the frame rate; otherwise
(``opencv-python-headless``, no ``$DISPLAY``) the frame rate is printed about once a second. With ``out=DIR``
each flow is written as ``<out>/frame_NNNNNN.<format>`` (``viz=true``: ``viz/``, ``live.save_frames``:
``frames/``), each file atomically. Ctrl-C, q / Esc or closing the window stops cleanly (what was written stays).
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from pwcflow.data import flowio, viz
from pwcflow.errors import UserError
from pwcflow.inference import frames

log = logging.getLogger("pwcflow.predict")

WINDOW = "pwcflow (q / Esc to stop)"
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class LiveOptions:
    """What a live run shows and writes."""

    out: Optional[str] = None    # folder for flows (and pictures / frames); None = write nothing
    fmt: str = "flo"
    viz: bool = False
    save_frames: bool = False
    window: Optional[bool] = None  # None = where possible
    max_frames: Optional[int] = None
    max_flow: Optional[float] = None


def window_available() -> bool:
    """True where OpenCV can open a window: a GUI build (not opencv-python-headless) and a display."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:
        cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)
        return True
    except cv2.error:  # "The function is not implemented": a headless build
        return False


class FpsMeter:
    """Frames per second over the last second or so; ``due()`` at the first flow, then once a second, for printed
    reports (a user sees at once that flows come)."""

    def __init__(self) -> None:
        self.times, self.last_report = [], 0.0

    def tick(self) -> float:
        now = time.time()
        self.times = [t for t in self.times if now - t < 2.0] + [now]
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def due(self) -> bool:
        if time.time() - self.last_report >= 1.0:
            self.last_report = time.time()
            return True
        return False


def _show(frame: np.ndarray, picture: np.ndarray, fps: float) -> bool:
    """Draw frame | colour flow with the frame rate; False once the user closed the window or pressed q / Esc."""
    both = viz.side_by_side([frame, picture])
    bgr = np.ascontiguousarray(both[:, :, ::-1])
    cv2.putText(bgr, "%.1f fps" % fps, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    cv2.imshow(WINDOW, bgr)
    key = cv2.waitKey(1) & 0xFF
    return key not in (ord("q"), 27) and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1


def _write(opts: LiveOptions, stem: str, frame: np.ndarray, flow: np.ndarray, picture: np.ndarray,
           write_flow: Callable[[str, np.ndarray, str], None], ext: str) -> None:
    if opts.save_frames:
        flowio.write_image(os.path.join(opts.out, "frames", stem + ".png"), frame)
    if opts.viz:
        flowio.write_image(os.path.join(opts.out, "viz", stem + ".png"), picture)
    write_flow(os.path.join(opts.out, stem + ext), flow, opts.fmt)


def run(source: str, flow_fn: FlowFn, opts: LiveOptions, write_flow: Callable[[str, np.ndarray, str], None],
        ext: str) -> int:
    """Predict the flow of every consecutive pair of ``source`` as it arrives; returns the flows made."""
    show = window_available() if opts.window is not False else False
    if opts.window and not show:
        raise UserError("bad setting live.window=true: no window here (opencv-python-headless, or no display); "
                        "use live.window=null to print the frame rate instead")
    if opts.out:
        os.makedirs(opts.out, exist_ok=True)
    cap, meter, made, prev, why = frames.open_capture(source), FpsMeter(), 0, None, "the input ended"
    log.info("live: %s -> %s%s", source, opts.out or "(nothing written)", "" if show else " (no window: fps lines)")
    try:
        for index, frame in frames.capture_frames(cap):
            if prev is not None:
                flow = flow_fn(prev, frame)
                picture = viz.flow_to_color(flow, opts.max_flow)
                if opts.out:
                    _write(opts, "frame_%06d" % (index - 1), prev, flow, picture, write_flow, ext)
                made, fps = made + 1, meter.tick()
                if show and not _show(frame, picture, fps):
                    why = "the window was closed"
                    break
                if not show and meter.due():
                    print("live: %d flows, %.1f fps" % (made, fps), file=sys.stderr, flush=True)
                if opts.max_frames and made >= opts.max_frames:
                    why = "live.max_frames reached"
                    break
            prev = frame
    except KeyboardInterrupt:
        why = "Ctrl-C"
    finally:
        cap.release()
        if show:
            cv2.destroyAllWindows()
    log.info("live: stopped (%s) after %d flows", why, made)
    return made

"""Where ``pwcflow.predict input=...`` finds its frame pairs: a folder, a glob, a video file or a list file.

- folder / glob: the image files in natural order (``frame2`` before ``frame10``), consecutive pairs;
- video (``.mp4``, ``.avi``, ...): consecutive decoded frames, named ``frame_NNNNNN`` by frame index;
- list (``.txt``): one ``img1 img2`` pair per line (relative paths are relative to the list file;
  blank lines and ``#`` comments are skipped);
- live (``camera:N`` or a stream URL such as ``rtsp://...``): frames as they arrive (``capture_frames``), read
  through the same capture path as video files (``open_capture``); ``pwcflow.inference.live`` runs them.

A pair is named by its first frame's stem: ``<stem>.<ext>`` -> outputs ``<out>/<stem>.*``.
"""

import glob
import os
import re
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np

from pwcflow.data import flowio
from pwcflow.errors import UserError

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")
Ref = Union[str, int]  # an image path, or a frame index of the video
_CAMERA_RE = re.compile(r"^camera:(\d+)$")
_STREAM_RE = re.compile(r"^(rtsp|rtsps|rtmp|http|https|udp|tcp|srt)://", re.IGNORECASE)


def is_live(source: str) -> bool:
    """True for ``camera:N`` and stream URLs (rtsp://, http://, ...): inputs read as they arrive."""
    return bool(_CAMERA_RE.match(str(source)) or _STREAM_RE.match(str(source)))


def open_capture(source: str) -> cv2.VideoCapture:
    """An opened ``cv2.VideoCapture`` for a video file, ``camera:N`` or a stream URL (one line if it fails)."""
    camera = _CAMERA_RE.match(str(source))
    cap = cv2.VideoCapture(int(camera.group(1)) if camera else str(source))
    if not cap.isOpened():
        what = "camera %s" % camera.group(1) if camera else "stream" if _STREAM_RE.match(str(source)) else "video"
        raise UserError("cannot open %s: %s" % (what, source))
    return cap


def _rgb(bgr: np.ndarray) -> np.ndarray:
    """A decoded frame (BGR, or grey from some cameras) as RGB uint8 (H, W, 3)."""
    if bgr.ndim == 2:
        return np.ascontiguousarray(np.repeat(bgr[..., None], 3, axis=2))
    return np.ascontiguousarray(bgr[:, :, 2::-1])


def capture_frames(cap: cv2.VideoCapture) -> Iterator[Tuple[int, np.ndarray]]:
    """(index, RGB uint8 frame) from an opened capture until it ends (a camera: until it stops sending)."""
    index = 0
    while True:
        ok, bgr = cap.read()
        if not ok or bgr is None:
            return
        yield index, _rgb(bgr)
        index += 1


@dataclass(frozen=True)
class Pair:
    """One pair to predict: outputs are named ``stem``; ``first``/``second`` are paths or video frame indices."""

    stem: str
    first: Ref
    second: Ref


def natural_key(path: str) -> List[Union[int, str]]:
    """Sort key that orders embedded numbers numerically."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _consecutive(files: List[str], what: str) -> List[Pair]:
    if len(files) < 2:
        raise UserError("need at least 2 frames, found %d: %s" % (len(files), what))
    pairs = [Pair(_stem(a), a, b) for a, b in zip(files[:-1], files[1:])]
    return _unique(pairs, what)


def _unique(pairs: List[Pair], what: str) -> List[Pair]:
    seen = {}
    for p in pairs:
        if p.stem in seen:
            raise UserError("two pairs would write the same output %r (%s and %s): %s"
                            % (p.stem, seen[p.stem], p.first, what))
        seen[p.stem] = p.first
    return pairs


def _images(paths: List[str]) -> List[str]:
    return sorted((p for p in paths if os.path.isfile(p) and os.path.splitext(p)[1].lower() in flowio.IMAGE_READ_EXTS),
                  key=natural_key)


def read_list(path: str) -> List[Pair]:
    """Pairs from a list file, one ``img1 img2`` per line."""
    base = os.path.dirname(os.path.abspath(path))
    pairs = []
    with open(path) as fh:
        for n, line in enumerate(fh, start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise UserError("line %d of %s must be 'img1 img2', got %r" % (n, path, line))
            a, b = (p if os.path.isabs(p) else os.path.join(base, p) for p in parts)
            pairs.append(Pair(_stem(a), a, b))
    if not pairs:
        raise UserError("no pairs in list file: %s" % path)
    return _unique(pairs, path)


def discover(source: str) -> Tuple[List[Pair], Optional[str]]:
    """(pairs, the video file or None) for ``input=source``."""
    ext = os.path.splitext(source)[1].lower()
    if any(c in source for c in "*?["):
        return _consecutive(_images(glob.glob(source)), source), None
    if os.path.isdir(source):
        return _consecutive(_images([os.path.join(source, f) for f in os.listdir(source)]), source), None
    if not os.path.isfile(source):
        raise UserError("input not found: %s" % source)
    if ext == ".txt":
        return read_list(source), None
    if ext in VIDEO_EXTS:
        n = VideoReader(source).count()
        if n < 2:
            raise UserError("need at least 2 frames, the video has %d: %s" % (n, source))
        return [Pair("frame_%06d" % i, i, i + 1) for i in range(n - 1)], source
    raise UserError("input must be a folder, a glob, a video (%s) or a .txt list: %s" % (" ".join(VIDEO_EXTS), source))


class VideoReader:
    """Decodes a video front to back; ``read(i)`` is cheap for i = the last or next frames."""

    def __init__(self, path: str):
        self.path = path
        self.cap = None  # type: Optional[cv2.VideoCapture]
        self.pos = 0
        self.last = (-1, None)  # type: Tuple[int, Optional[np.ndarray]]

    def _open(self) -> cv2.VideoCapture:
        return open_capture(self.path)

    def count(self) -> int:
        """Number of decodable frames (decodes the whole file once)."""
        cap, n = self._open(), 0
        while cap.grab():
            n += 1
        cap.release()
        return n

    def fps(self) -> float:
        """The container's frame rate (0 if unknown)."""
        cap = self._open()
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        cap.release()
        return fps

    def read(self, index: int) -> np.ndarray:
        """Frame ``index`` as RGB uint8."""
        if self.last[0] == index:
            return self.last[1]
        if self.cap is None or index < self.pos:
            self.cap, self.pos = self._open(), 0
        while self.pos < index and self.cap.grab():
            self.pos += 1
        ok, bgr = self.cap.read() if self.pos == index else (False, None)
        if not ok:
            raise UserError("cannot decode frame %d of video %s" % (index, self.path))
        self.pos += 1
        self.last = (index, _rgb(bgr))
        return self.last[1]


class FrameReader:
    """Reads a pair's frames (image files or video frames), keeping the last two for consecutive pairs."""

    def __init__(self, video: Optional[str] = None):
        self.video = VideoReader(video) if video else None
        self.cache = {}  # type: dict

    def read(self, ref: Ref) -> np.ndarray:
        """RGB uint8 (H, W, 3); an unreadable frame raises ``UserError`` naming it."""
        if ref in self.cache:
            return self.cache[ref]
        img = self.video.read(int(ref)) if self.video else flowio.read_image(str(ref))
        if len(self.cache) >= 2:
            self.cache.pop(next(iter(self.cache)))
        self.cache[ref] = img
        return img

    def pair(self, p: Pair) -> Tuple[np.ndarray, np.ndarray]:
        """Both frames of ``p``, checked to be the same size."""
        a, b = self.read(p.first), self.read(p.second)
        if a.shape != b.shape:
            raise UserError("frames differ in size: %s is %dx%d, %s is %dx%d"
                            % (p.first, a.shape[1], a.shape[0], p.second, b.shape[1], b.shape[0]))
        return a, b

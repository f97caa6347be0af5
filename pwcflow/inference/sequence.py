"""``python -m pwcflow.predict ckpt=PATH input=<folder | glob | video | list.txt> out=DIR``: flow for a sequence.

Every pair (see ``pwcflow.inference.frames``) goes through one restored graph; consecutive pairs of the same size share
a batch of ``batch``. For the pair whose first frame is ``<stem>.<ext>`` it writes, each file atomically:

- ``<out>/<stem>.flo`` (``format=flo``), ``.png`` (``format=png16``, KITTI's 16-bit encoding) or ``.npy``;
- with ``bidirectional=true``: ``backward/<stem>.<fmt>`` (flow frame 2 -> 1), ``occlusion/<stem>.png``
  (255 = occluded, forward-backward check of ``pwcflow.inference.consistency``) and ``confidence/<stem>.png`` (0-255);
- with ``viz=true`` (or ``video``): ``viz/<stem>.png`` colour pictures with ONE colour scale for the whole
  sequence (``max_flow``, else the largest |flow| over the sequence, saved in ``viz/scale.json``);
- with ``video=true`` (or ``video=PATH``): ``<out>/flow.mp4``, the colour pictures as an MP4 (mp4v).

A rerun skips the pairs whose outputs all exist (resume after a crash). An unreadable frame stops the run
with one ``error:`` line naming it; what was finished stays.
"""

import contextlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

import cv2
import numpy as np
from tqdm import tqdm

from pwcflow.config import commands
from pwcflow.data import flowio, viz
from pwcflow.data.flowio import write_flow  # one name here, so tests can make writes fail
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight
from pwcflow.inference import consistency, frames, prefetch
from pwcflow.inference.frames import Pair
from pwcflow.inference.predictor import FlowPredictor, open_predictor, to_input

log = logging.getLogger("pwcflow.predict")


@dataclass
class Options:
    """What a sequence run writes, and how."""

    out: str
    fmt: str = "flo"
    batch: int = 4
    bidirectional: bool = False
    alpha1: float = consistency.ALPHA1
    alpha2: float = consistency.ALPHA2
    viz: bool = False
    max_flow: Optional[float] = None
    video: Optional[str] = None  # MP4 path
    fps: float = 10.0
    progress: bool = True
    overlap: bool = True  # decode and write on threads beside the forward (False: all in this thread)


def flow_path(opts: Options, stem: str, sub: str = "") -> str:
    """``<out>[/<sub>]/<stem>.<format ext>``."""
    return os.path.join(opts.out, sub, stem + flowio.FLOW_FORMATS[opts.fmt])


def outputs(opts: Options, stem: str) -> List[str]:
    """The files a finished pair has (pictures excepted: they are redrawn when the scale changes)."""
    files = [flow_path(opts, stem)]
    if opts.bidirectional:
        files += [flow_path(opts, stem, "backward"), os.path.join(opts.out, "occlusion", stem + ".png"),
                  os.path.join(opts.out, "confidence", stem + ".png")]
    return files


class Progress:
    """A tqdm bar on a terminal; otherwise a plain log line every ~10 % (no carriage returns in log files)."""

    def __init__(self, total: int, done: int, enabled: bool):
        self.total, self.n, self.enabled = total, done, enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=done, unit="pair", dynamic_ncols=True) if self.tty else None
        self.step, self.next = max(1, total // 10), done

    def update(self, n: int) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and (self.n >= self.next or self.n == self.total):
            print("predict: %d/%d pairs" % (self.n, self.total), file=sys.stderr, flush=True)
            self.next = self.n + self.step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _groups(pairs: Iterable[Pair], reader: frames.FrameReader, size: int,
            bidirectional: bool) -> Iterator[Tuple[List[Pair], np.ndarray]]:
    """Consecutive same-sized pairs in groups of up to ``size``, each with its network input (the backward
    pairs after the forward ones with ``bidirectional``); on an unreadable frame the group read so far comes
    first, so that its pairs are finished, then the error."""
    group = []  # type: List[Tuple[Pair, np.ndarray, np.ndarray]]
    for p in pairs:
        try:
            a, b = reader.pair(p)
        except Exception:
            if group:
                yield _input(group, bidirectional)
            raise
        if group and (len(group) == size or group[0][1].shape != a.shape):
            yield _input(group, bidirectional)
            group = []
        group.append((p, a, b))
    if group:
        yield _input(group, bidirectional)


def _input(group: List[Tuple[Pair, np.ndarray, np.ndarray]], bidirectional: bool) -> Tuple[List[Pair], np.ndarray]:
    x = [to_input(a, b) for _, a, b in group] + ([to_input(b, a) for _, a, b in group] if bidirectional else [])
    return [p for p, _, _ in group], np.stack(x)


def predict_pairs(predictor: FlowPredictor, pairs: List[Pair], reader: frames.FrameReader,
                  opts: Options) -> Tuple[int, int]:
    """Predict and write every pair whose outputs are missing; returns (pairs predicted, pairs skipped).

    With ``opts.overlap`` the frames are decoded on a reader thread and the outputs written on a writer thread
    (``pwcflow.inference.prefetch``), both bounded, while the forward runs; the same calls in the same order."""
    todo = [p for p in pairs if not all(os.path.isfile(f) for f in outputs(opts, p.stem))]
    progress = Progress(len(pairs), len(pairs) - len(todo), opts.progress)
    done = [0]

    def finish(group: List[Pair], flows: np.ndarray) -> None:
        for i, p in enumerate(group):
            _write_pair(opts, p.stem, flows[i], flows[len(group) + i] if opts.bidirectional else None)
        done[0] += len(group)
        progress.update(len(group))

    depth = prefetch.DEPTH if opts.overlap else 0
    try:
        with prefetch.Writer(depth) as writer, \
                contextlib.closing(prefetch.prefetch(_groups(todo, reader, opts.batch, opts.bidirectional),
                                                     depth)) as groups:
            for group, x in groups:
                writer.submit(finish, group, predictor.predict_batch(x))
    finally:
        progress.close()
    return done[0], len(pairs) - len(todo)


def _write_pair(opts: Options, stem: str, forward: np.ndarray, backward: Optional[np.ndarray]) -> None:
    """The pair's outputs; the forward flow last, so that its presence means the pair is complete."""
    if backward is not None:
        occluded, conf = consistency.occlusion(forward, backward, opts.alpha1, opts.alpha2)
        write_flow(flow_path(opts, stem, "backward"), backward, opts.fmt)
        flowio.write_gray(os.path.join(opts.out, "occlusion", stem + ".png"), occluded.astype(np.uint8) * 255)
        flowio.write_gray(os.path.join(opts.out, "confidence", stem + ".png"),
                          np.clip(conf * 255.0 + 0.5, 0, 255).astype(np.uint8))
    write_flow(flow_path(opts, stem), forward, opts.fmt)


def sequence_scale(opts: Options, stems: List[str]) -> float:
    """The colour-wheel radius for the whole sequence: ``max_flow``, else the largest |flow| of any pair."""
    if opts.max_flow:
        return float(opts.max_flow)
    biggest = 0.0
    for stem in stems:
        flow = flowio.read_flow(flow_path(opts, stem))[0].astype(np.float64)
        biggest = max(biggest, float(np.sqrt((flow ** 2).sum(-1)).max()))
    return max(biggest, 1e-5)


def write_pictures(opts: Options, stems: List[str]) -> Tuple[float, List[str]]:
    """``viz/<stem>.png`` for every pair with one scale; pictures drawn at another scale are redrawn."""
    scale = sequence_scale(opts, stems)
    folder = os.path.join(opts.out, "viz")
    record = os.path.join(folder, "scale.json")
    same = False
    if os.path.isfile(record):
        with open(record) as fh:
            same = json.load(fh).get("max_flow") == scale
    paths = []
    for stem in stems:
        path = os.path.join(folder, stem + ".png")
        if not (same and os.path.isfile(path)):
            flowio.write_image(path, viz.flow_to_color(flowio.read_flow(flow_path(opts, stem))[0], scale))
        paths.append(path)
    atomic.atomic_write_json(record, {"max_flow": scale})
    return scale, paths


def write_video(path: str, pictures: List[str], fps: float) -> None:
    """The colour pictures as an MP4 (OpenCV, mp4v), written to a temp file and renamed."""
    first = flowio.read_image(pictures[0])
    size = (first.shape[1], first.shape[0])
    tmp = atomic.temp_sibling(path)
    writer = cv2.VideoWriter(tmp + ".mp4", cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    try:
        if not writer.isOpened():
            raise UserError("cannot write video (no mp4v encoder in this OpenCV?): %s" % path)
        for pic in pictures:
            img = flowio.read_image(pic)
            if img.shape[:2] != first.shape[:2]:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            writer.write(np.ascontiguousarray(img[:, :, ::-1]))
        writer.release()
        os.replace(tmp + ".mp4", path)
    finally:
        writer.release()
        if os.path.exists(tmp + ".mp4"):
            os.remove(tmp + ".mp4")


def options_from_config(cfg: commands.PredictConfig, video_in: Optional[str]) -> Options:
    """``Options`` from predict's typed config (format, batch and ranges were checked at compose time)."""
    out = os.path.abspath(cfg.out)
    if os.path.isfile(out):
        raise UserError("out must be a folder for input=..., but it is a file: %s" % out)
    video = cfg.video
    video = os.path.join(out, "flow.mp4") if video is True else (os.path.abspath(str(video)) if video else None)
    fps = cfg.fps or (frames.VideoReader(video_in).fps() if video_in else 0.0) or 10.0
    return Options(out=out, fmt=cfg.format, batch=cfg.batch, bidirectional=cfg.bidirectional,
                   alpha1=cfg.consistency.alpha1, alpha2=cfg.consistency.alpha2,
                   viz=bool(cfg.viz) or bool(video), max_flow=cfg.max_flow, video=video, fps=float(fps),
                   progress=cfg.progress)


def preflight_outputs(opts: Options, pairs: List[Pair], reader: frames.FrameReader) -> None:
    """Before the model is built: ``out`` (and ``video``) writable, with room for the flows still to write
    (sized from the first frame); a dead run's partial temps anywhere under ``out`` are removed."""
    todo = sum(not all(os.path.isfile(f) for f in outputs(opts, p.stem)) for p in pairs)
    h, w = reader.read(pairs[0].first).shape[:2] if pairs and todo else (0, 0)
    per_pair = (h * w * 8 + 12) * (2 if opts.bidirectional else 1) + (h * w * 3 if opts.viz else 0)
    opts.out = preflight.preflight_dir(opts.out, "out", need=todo * per_pair)
    preflight.refuse_folders([f for p in pairs for f in outputs(opts, p.stem)], "out", opts.out)
    if opts.video and not opts.video.startswith(opts.out + os.sep):
        opts.video = preflight.preflight_file(opts.video, "video", exts=(".mp4",))


def run(cfg: commands.PredictConfig) -> None:
    """The sequence form of ``pwcflow.predict`` (``input=`` set)."""
    pairs, video_in = frames.discover(cfg.input)
    opts = options_from_config(cfg, video_in)
    reader = frames.FrameReader(video_in)
    preflight_outputs(opts, pairs, reader)
    for folder in [opts.out] + [os.path.join(opts.out, sub) for sub in ("viz", "backward", "occlusion", "confidence")]:
        atomic.remove_stale(folder)  # what a killed earlier run was writing
    if opts.video:
        atomic.remove_stale(os.path.dirname(opts.video))
    predictor = open_predictor(cfg.model, cfg.ckpt, cfg.device, cfg.storage)
    try:
        _write_all(predictor, pairs, reader, opts)
    except OSError as exc:  # the disk filled up or went away mid-sequence: finished pairs stay
        raise preflight.os_error(exc, exc.filename or opts.out)
    finally:
        predictor.close()


def _write_all(predictor: FlowPredictor, pairs: List[Pair], reader: frames.FrameReader, opts: Options) -> None:
    """Every missing pair, then the pictures and the video."""
    predicted, skipped = predict_pairs(predictor, pairs, reader, opts)
    log.info("%d pairs: %d predicted, %d already done -> %s", len(pairs), predicted, skipped, opts.out)
    if opts.viz:
        scale, pictures = write_pictures(opts, [p.stem for p in pairs])
        log.info("colour pictures in %s (one scale for the sequence: %.2f px)", os.path.join(opts.out, "viz"), scale)
        if opts.video:
            write_video(opts.video, pictures, opts.fps)
            log.info("wrote %s", opts.video)

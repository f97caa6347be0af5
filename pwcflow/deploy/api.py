"""The Python API: ``pwcflow.load(name | checkpoint | exported file, ...)`` -> a ``FlowModel``.

    with pwcflow.load("pwcnet-lg-6-2-chairsthingsmix") as m:   # or a checkpoint path / obs:// / model.onnx
        flow = m(img1, img2)                                    # (H, W, 2) float32, u then v, in pixels

One object for both back ends: a checkpoint runs in a TensorFlow session (``inference.predictor.FlowPredictor``),
an exported ``.onnx`` / ``.tflite`` on its runtime (``deploy.exported``; no TensorFlow imported for ``.onnx``).
Frames are RGB arrays of any size: uint8 (0-255), or float (0-1); grey (H, W) and RGBA are converted.
Both pad/crop as tfoptflow does, so the flows equal ``python -m pwcflow.predict``'s.
"""

import os
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pwcflow.errors import UserError
from pwcflow.inference import scale

DEFAULT_MODEL = "lg-6-2"  # conf/predict.yaml's default variant


def as_rgb(img: np.ndarray, what: str = "image") -> np.ndarray:
    """An RGB frame as float32 (H, W, 3) in [0, 1]: uint8 is divided by 255, float taken as 0-1 already."""
    return _unit(_rgb3(img, what), what)


def _rgb3(img: np.ndarray, what: str) -> np.ndarray:
    """(H, W, 3) of a grey, RGB or RGBA array (dtype kept, so a uint8 frame is resized as the CLI resizes it)."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise UserError("%s: expected an RGB array (H, W, 3), got shape %s" % (what, img.shape))
    return np.ascontiguousarray(img[..., :3])


def _unit(img: np.ndarray, what: str) -> np.ndarray:
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if not np.issubdtype(img.dtype, np.floating):
        raise UserError("%s: expected uint8 (0-255) or float (0-1) values, got %s" % (what, img.dtype))
    return img.astype(np.float32)


class _Session:
    """A checkpoint in a TensorFlow session."""

    def __init__(self, source: str, model, device, precision: Optional[str], storage) -> None:
        from pwcflow.inference.predictor import open_predictor

        self.spec = model_spec(model) if isinstance(model, str) else model
        self.device = compose_device(device, precision) if isinstance(device, str) else device
        self.predictor = open_predictor(self.spec, source, self.device, storage)
        self.dense, self.batch_limit = self.spec.dense, None

    def run(self, x: np.ndarray) -> np.ndarray:
        scale.check_fits(x.shape[2], x.shape[3], self.dense, x.shape[0], self.device.name)
        return self.predictor.predict_batch(x)

    def close(self) -> None:
        self.predictor.close()


class _Exported:
    """An exported ``.onnx`` / ``.tflite`` model (fixed or dynamic input shape)."""

    def __init__(self, path: str, threads: Optional[int]) -> None:
        from pwcflow.deploy import exported

        self.path, self.model, self.fit = path, exported.load(path, threads), exported.fit
        self.batch_limit = self.model.input_shape[0]

    def run(self, x: np.ndarray) -> np.ndarray:
        h, w = x.shape[2:4]
        flow = self.model.run(np.ascontiguousarray(self.fit(x, self.model.input_shape, self.path), np.float32))
        return flow[:x.shape[0], :h, :w]

    def close(self) -> None:
        self.model = None


class FlowModel:
    """What ``pwcflow.load`` returns: ``m(img1, img2)``, ``m.batch(pairs)``, ``m.sequence(frames)``, ``m.close()``."""

    def __init__(self, runner, source: str, max_side: Optional[int]) -> None:
        self._runner, self.source, self.max_side = runner, source, scale.check_max_side(max_side)

    def __repr__(self) -> str:
        return "FlowModel(%r, max_side=%r)" % (self.source, self.max_side)

    def __call__(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        """The flow (H, W, 2) from frame ``img1`` to ``img2`` (equal sizes)."""
        return self.batch([(img1, img2)])[0]

    def batch(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Flows [N, H, W, 2] for N equal-sized pairs, run together (in chunks a fixed-batch export takes)."""
        if self._runner is None:
            raise UserError("this FlowModel is closed")
        frames = [(_rgb3(a, "pair %d img1" % i), _rgb3(b, "pair %d img2" % i)) for i, (a, b) in enumerate(pairs)]
        if not frames:
            return np.zeros((0, 0, 0, 2), np.float32)
        h, w = frames[0][0].shape[:2]
        for i, (a, b) in enumerate(frames):
            if a.shape != (h, w, 3) or b.shape != (h, w, 3):
                raise UserError("pair %d: frames of %s and %s, expected %dx%d like pair 0 (batch needs equal sizes)"
                                % (i, a.shape[:2], b.shape[:2], h, w))
        size = scale.reduced_size(h, w, self.max_side)  # resized before the 0-1 scaling, as the CLI does
        x = np.stack([np.stack([_unit(scale.shrink(f, size), "pair %d" % i) for f in pair])
                      for i, pair in enumerate(frames)])
        return np.stack([scale.restore_flow(np.ascontiguousarray(f), h, w) for f in self._run(x)])

    def _run(self, x: np.ndarray) -> np.ndarray:
        step = self._runner.batch_limit or len(x)
        return np.concatenate([self._runner.run(x[i:i + step]) for i in range(0, len(x), step)])

    def sequence(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The flow between each frame and the next, one at a time (a video, a camera: any iterable)."""
        prev = None
        for frame in frames:
            if prev is not None:
                yield self(prev, frame)
            prev = frame

    def close(self) -> None:
        """Release the session or runtime (also on leaving a ``with`` block)."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    def __enter__(self) -> "FlowModel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def model_spec(name: str):
    """``conf/model/<name>.yaml`` as the commands type it (a ``ModelSpec``); one line for an unknown name."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    from pwcflow.config import commands
    from pwcflow.config.compose import CONF_DIR

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            node = compose(overrides=["+model=%s" % name]).model
    except MissingConfigException:
        options = sorted(f[:-5] for f in os.listdir(os.path.join(CONF_DIR, "model")) if f.endswith(".yaml"))
        raise UserError("bad setting model=%s: one of %s" % (name, ", ".join(options)))
    return commands.model_spec(node)


def compose_device(device: str, precision: Optional[str]):
    """``conf/device/<device>.yaml`` (cpu, gpu, npu) with ``precision`` set where given."""
    from pwcflow.config.compose import compose_group

    return compose_group("device", device, {"precision": precision} if precision else {})


def load(source: str, model=None, device="cpu", precision: Optional[str] = None,
         max_side: Optional[int] = None, storage=None, threads: Optional[int] = None) -> FlowModel:
    """A ``FlowModel`` for a registry name (``python -m pwcflow.models``), a checkpoint (prefix, directory, run
    dir, ``obs://``) or an exported ``.onnx`` / ``.tflite`` file.

    ``model``: the variant (sm-6-2, lg-6-2, or a typed ``ModelSpec``) of a checkpoint; a registry name brings its
    own. ``device``: cpu | gpu | npu (the ``device`` config group, or a typed ``DeviceConfig``); ``precision``:
    fp32 | bf16 (cpu). ``max_side``: predict at a
    reduced size where a frame's longer side exceeds it, flow scaled back. ``storage``: a ``StorageConfig``
    for obs:// sources and the cache (default: conf/storage/obs.yaml). ``threads``: the exported runtime's.
    """
    source = os.fspath(source)
    scale.check_max_side(max_side)
    if os.path.splitext(source)[1].lower() in (".onnx", ".tflite"):
        return FlowModel(_Exported(source, threads), source, max_side)
    from pwcflow.storage import registry

    named = registry.lookup(source)
    given = getattr(model, "name", model)
    if named is not None and given is not None and given != named.variant:
        raise UserError("bad setting model=%s: %s is a %s model" % (given, source, named.variant))
    variant = model or (named.variant if named is not None else DEFAULT_MODEL)
    return FlowModel(_Session(source, variant, device, precision, storage), source, max_side)


def pairs_of(frames: Sequence[np.ndarray]) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Consecutive frames as pairs: [(f0, f1), (f1, f2), ...] (for ``FlowModel.batch``)."""
    return list(zip(frames[:-1], frames[1:]))

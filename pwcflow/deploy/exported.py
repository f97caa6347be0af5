"""Run an exported PWC-Net without TensorFlow: ONNX (onnxruntime) or TensorFlow Lite.

A deployment needs only this module, numpy, OpenCV and one runtime: ``onnxruntime`` for ``.onnx``;
for ``.tflite`` the LiteRT interpreter (``ai_edge_litert``), else ``tflite_runtime``, else (importing
TensorFlow) ``tensorflow.lite``. Nothing here imports TensorFlow for ``.onnx`` files.

Exported graphs have a fixed input [N, 2, H, W, 3] (any dimension may be dynamic in ONNX). Frames are
zero-padded at the bottom/right up to the model's H, W (or, for a dynamic dimension, to the next multiple
of 64) and the flow is cropped back: tfoptflow's test-time processing, the same numbers as ``pwcflow.eval``.
Frames larger than a fixed-size model are refused (export a larger model).
"""

import os
import subprocess
import sys
import warnings
from typing import List, Optional

import numpy as np

from pwcflow.errors import UserError
from pwcflow.model.spec import pad_to, to_input

SUFFIXES = (".onnx", ".tflite")
MULTIPLE = 64


def sample_input(shape: List[Optional[int]]) -> np.ndarray:
    """A synthetic moving-texture pair (seed 0) as x_tnsr of ``shape`` (dynamic dims: batch 1, 128 px)."""
    from pwcflow.data import synthetic

    n, h, w = shape[0] or 1, shape[2] or 128, shape[3] or 128
    img1, img2, _ = synthetic.make_pair(synthetic.SyntheticSpec(size=(h, w)), "val", 0)
    return np.repeat(to_input(img1, img2)[None], n, axis=0)


class OnnxModel:
    """An ``.onnx`` export on onnxruntime's CPU provider."""

    def __init__(self, path: str, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.runtime = "onnxruntime %s" % ort.__version__

    def run(self, x: np.ndarray) -> np.ndarray:
        """flow_pred [N, H, W, 2] for x_tnsr ``x`` [N, 2, H, W, 3] of the model's shape."""
        return self.sess.run(None, {self.input_name: x})[0]


def _tflite_interpreter():
    """The TFLite Interpreter class from the lightest runtime installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf
    except ImportError:
        raise UserError("no TFLite runtime: pip install ai-edge-litert (or tflite-runtime, or tensorflow)")
    return tf.lite.Interpreter


class TfliteModel:
    """A ``.tflite`` export on the TFLite interpreter (fixed input shape)."""

    def __init__(self, path: str, threads: Optional[int] = None):
        interpreter = _tflite_interpreter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.interp = interpreter(model_path=path, num_threads=threads)
        self.interp.allocate_tensors()
        self.inp = self.interp.get_input_details()[0]
        self.out = self.interp.get_output_details()[0]
        self.input_shape = [int(d) for d in self.inp["shape"]]
        top = interpreter.__module__.split(".")[0]
        self.runtime = "TFLite interpreter (%s %s)" % (top, getattr(sys.modules.get(top), "__version__", ""))

    def run(self, x: np.ndarray) -> np.ndarray:
        """flow_pred [N, H, W, 2] for x_tnsr ``x`` [N, 2, H, W, 3] of the model's shape."""
        self.interp.set_tensor(self.inp["index"], x)
        self.interp.invoke()
        return self.interp.get_tensor(self.out["index"]).copy()


def _probe_tflite(path: str) -> None:
    """Open ``path`` in a child interpreter first: the TFLite runtime can crash (SIGSEGV) on a damaged file."""
    code = "import sys; from pwcflow.deploy import exported; exported.TfliteModel(sys.argv[1])"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code, path], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, universal_newlines=True)
    if proc.returncode < 0:
        raise UserError("cannot load model file %s: not a valid tflite model (the TFLite runtime crashed on it, "
                        "signal %d)" % (path, -proc.returncode))
    if proc.returncode:
        errors = [ln for ln in proc.stderr.splitlines() if "rror" in ln] or ["exit status %d" % proc.returncode]
        raise UserError("cannot load model file %s: not a valid tflite model (%s)" % (path, errors[-1][:200]))


def load(path: str, threads: Optional[int] = None, probe: bool = True):
    """Open an exported ``.onnx`` / ``.tflite`` file; a missing or unreadable file is a one-line UserError.

    ``probe``: check a ``.tflite`` file in a child process first (a damaged one can crash the runtime).
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in SUFFIXES:
        raise UserError("bad setting model_file=%s: must end in %s (a checkpoint goes in ckpt=)"
                        % (path, " or ".join(SUFFIXES)))
    if not os.path.isfile(path):
        raise UserError("file not found: %s" % path)
    try:
        if ext == ".onnx":
            return OnnxModel(path, threads or 0)
        if probe:
            _probe_tflite(path)
        return TfliteModel(path, threads)
    except ImportError as exc:
        raise UserError("cannot run %s: %s (pip install pwcflow[export])" % (path, exc))
    except UserError:
        raise
    except Exception as exc:  # runtimes raise their own types (InvalidProtobuf, ValueError, RuntimeError)
        why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError("cannot load model file %s: not a valid %s model (%s)" % (path, ext[1:], why[:200]))


def fit(x: np.ndarray, shape: List[Optional[int]], path: str = "model") -> np.ndarray:
    """Zero-pad a batch [B, 2, h, w, 3] at the bottom/right (and in the batch) to the model's input shape."""
    sizes = {}
    for ax, key in ((0, "batch"), (2, "height"), (3, "width")):
        have, want = x.shape[ax], shape[ax]
        if want is None:
            want = have if ax == 0 else -(-have // MULTIPLE) * MULTIPLE
        if have > want:
            raise UserError("input %s %d is larger than the model's %d in %s: export a model with %s=%d or more"
                            % (key, have, want, path, key, -(-have // MULTIPLE) * MULTIPLE if ax else have))
        sizes[ax] = want
    return pad_to(x, sizes)


def predict_pair(model, img1: np.ndarray, img2: np.ndarray, path: str = "model") -> np.ndarray:
    """Flow (H, W, 2) from two RGB uint8 frames: pad to the model's input, run, crop."""
    h, w = img1.shape[:2]
    x = fit(to_input(img1, img2)[None], model.input_shape, path)
    return model.run(np.ascontiguousarray(x, dtype=np.float32))[0, :h, :w]

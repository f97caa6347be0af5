"""Test-time PWC-Net as tfoptflow runs it: pad to a multiple of 64, predict, crop back.

``FlowPredictor`` builds the graph once and reuses it for every call (any image size).
"""

from typing import List, Optional, Sequence, Tuple

import numpy as np

from pwcflow.files import checkpoint
from pwcflow.inference import scale
from pwcflow.model.pwcnet import ModelSpec, pwcnet
from pwcflow.model.spec import pad_to_multiple, to_input  # noqa: F401 (to_input: for callers of this module)
from pwcflow.tf1 import tf


def predict_padded(sess: tf.Session, x_tensor: tf.Tensor, fetches: List[tf.Tensor], pairs: np.ndarray,
                   multiple: int) -> List[np.ndarray]:
    """The one pad-predict-crop path: zero-pad ``pairs`` [B, 2, H, W, 3] bottom/right to ``multiple``, run
    ``fetches`` (the first is the full-resolution flow), crop that flow back to H x W; the rest as computed."""
    h, w = pairs.shape[2:4]
    out = sess.run(fetches, {x_tensor: pad_to_multiple(pairs, multiple, (2, 3))})
    return [out[0][:, :h, :w]] + list(out[1:])


class FlowPredictor:
    """A restored PWC-Net in its own graph and session, reused across calls."""

    def __init__(self, spec: ModelSpec, ckpt: Optional[str], session_config: Optional[tf.ConfigProto] = None,
                 seed: Optional[int] = None, input_shape: Optional[Sequence[Optional[int]]] = None,
                 finalize: bool = True, bf16_fp32: Optional[Sequence[str]] = None, freeze: Optional[bool] = None):
        """``input_shape`` fixes the ``x_tnsr`` placeholder's shape (default [None, 2, None, None, 3]);
        ``finalize=False`` leaves the graph open for more ops (used by ``pwcflow.export``); ``bf16_fp32``: build
        the network in bfloat16 keeping these layers in float32 (``device.precision.fp32_layers``; None: float32).
        ``freeze`` (default: for a bfloat16 graph that is finalized) turns the restored filters into constants,
        so oneDNN reorders each bfloat16 filter into its blocked layout once instead of on every call (the same
        flows; no ``variables`` / ``saver`` afterwards)."""
        from pwcflow.device import precision

        self.spec = spec
        self.prefix = None if ckpt is None else checkpoint.resolve(ckpt)  # the checkpoint restored (None: random)
        self.graph = tf.Graph()
        with self.graph.as_default():
            if seed is not None:
                tf.set_random_seed(seed)
            shape = list(input_shape) if input_shape is not None else [None, 2, None, None, 3]
            self.x = tf.placeholder(tf.float32, shape, name="x_tnsr")
            with precision.graph(bf16_fp32):
                self.flow, self.pyramid = pwcnet(self.x, spec)
            self.variables = checkpoint.model_variables()
            self.saver = tf.train.Saver(var_list={v.op.name: v for v in self.variables}, max_to_keep=None)
            self.sess = tf.Session(graph=self.graph, config=session_config)
            if ckpt is None:
                self.sess.run(tf.variables_initializer(self.variables))
            else:
                checkpoint.restore(self.sess, self.prefix, self.variables, spec.name)
        if finalize and (bf16_fp32 is not None if freeze is None else freeze):
            self._freeze(session_config)
        if finalize:
            self.graph.finalize()

    def _freeze(self, session_config: Optional[tf.ConfigProto]) -> None:
        """Replace the graph and session by the same network with the filters' values as constants. The biases
        stay variables (set from the restored values): a constant bias of zeros (random-init checkpoints) would
        be folded away by grappler, and the convolution would lose its fused bias + LeakyRelu."""
        outputs = [self.flow] + list(self.pyramid)
        biases = [v for v in self.variables if not v.op.name.endswith("kernel")]
        values = self.sess.run(biases)
        frozen = tf.graph_util.convert_variables_to_constants(
            self.sess, self.graph.as_graph_def(), sorted({t.op.name for t in outputs}),
            variable_names_blacklist=[v.op.name for v in biases])
        self.sess.close()
        self.graph = tf.Graph()
        with self.graph.as_default():
            tf.import_graph_def(frozen, name="")
            kept = [self.graph.get_tensor_by_name(v.name) for v in biases]
            assign = [tf.assign(t, value) for t, value in zip(kept, values)]
        names = [self.x.name, self.flow.name] + [t.name for t in self.pyramid]
        self.x, self.flow, *self.pyramid = [self.graph.get_tensor_by_name(n) for n in names]
        self.variables, self.saver = [], None
        self.sess = tf.Session(graph=self.graph, config=session_config)
        self.sess.run(assign)

    def predict_batch(self, pairs: np.ndarray, with_pyramid: bool = False):
        """Flow for a batch [B, 2, H, W, 3] float32 of any H, W; returns [B, H, W, 2] (and pyramid)."""
        fetches = [self.flow] + (list(self.pyramid) if with_pyramid else [])
        out = predict_padded(self.sess, self.x, fetches, pairs, self.spec.multiple)
        return (out[0], out[1:]) if with_pyramid else out[0]

    def predict(self, img1: np.ndarray, img2: np.ndarray) -> np.ndarray:
        """Flow (H, W, 2) from two RGB uint8 frames of equal size."""
        return self.predict_batch(to_input(img1, img2)[None])[0]

    def predict_many(self, pairs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> List[np.ndarray]:
        """Flows for same-sized frame pairs in one batch."""
        return list(self.predict_batch(np.stack([to_input(a, b) for a, b in pairs])))

    def close(self) -> None:
        """Release the session."""
        self.sess.close()


def locate_checkpoint(ckpt: str, device, storage, spec: Optional[ModelSpec] = None,
                      fits: Optional[Tuple[int, int]] = None) -> str:
    """The checkpoint a command opens, in the one refusal order: the device (an unusable one is refused before
    anything else), the memory estimate for frames of ``fits`` (height, width) with ``spec``, then the checkpoint
    (local, cached from OBS, or a registry name). Returns its prefix."""
    from pwcflow.device import backend
    from pwcflow.storage import cache

    backend.prepare(device)
    if fits and spec is not None:
        scale.check_fits(fits[0], fits[1], spec.dense, 1, device.name)
    return checkpoint.resolve(cache.localize(ckpt, storage, "checkpoint"))


def open_predictor(spec: ModelSpec, ckpt: str, device, storage,
                   fits: Optional[Tuple[int, int]] = None) -> FlowPredictor:
    """Every command's predictor: ``locate_checkpoint``, then the restored graph in a session configured for
    ``device`` (its ``.prefix`` is the checkpoint it restored)."""
    from pwcflow.device import backend, precision

    prefix = locate_checkpoint(ckpt, device, storage, spec, fits)
    return FlowPredictor(spec, prefix, backend.session_config(device, training=False),
                         bf16_fp32=precision.fp32_layers(device))

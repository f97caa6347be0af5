"""Graph building blocks of PWC-Net, written with ``tf.compat.v1`` only (TF 1.15 and TF 2.x).

Numerics follow tfoptflow exactly (checked against its outputs shipped in ``pwcflow/reference/``). Two
formulations exist for the cost volume and the warp: ``fused`` (9 blocked batched matmuls for the cost volume, one
gather for the warp) and ``reference`` (tfoptflow's own: 81 slice/multiply/mean ops, four separate
gathers). Both compute the same numbers up to float32 summation order. Which ones a graph gets (``auto``),
whether large convolutions are split at the L2 cache size and whether the flow head and the first context
layer share a convolution is decided per backend by ``tuning``.
"""

import contextlib
import fnmatch
import logging
from typing import Iterator, List, Optional, Sequence, Tuple

from pwcflow.model.tuning import COSTVOL_IMPLS, conv_split_bytes
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.model")
LEAKY_ALPHA = 0.1
_bf16_keep: List[Optional[Tuple[str, ...]]] = [None]  # set by ``bf16``: layer patterns kept in float32


@contextlib.contextmanager
def bf16(keep_fp32: Sequence[str]) -> Iterator[None]:
    """Build the graph in bfloat16 compute: every convolution, the cost volume and the warp's interpolation
    take bfloat16 inputs and kernels (the variables stay float32: they are cast where read, so checkpoints and
    master weights are float32), activations stay bfloat16 from layer to layer; the layers named by a
    ``keep_fp32`` pattern (fnmatch on ``layer_name``s such as ``predict_flow/flow2``, ``cost_volume6``,
    ``warp5``) compute in float32. Flows leave every level in float32."""
    _bf16_keep.append(tuple(keep_fp32))
    try:
        yield
    finally:
        _bf16_keep.pop()


def compute_dtype(layer: str) -> tf.DType:
    """The dtype ``layer`` computes in: float32 unless built under ``bf16`` and not kept by its list."""
    keep = _bf16_keep[-1]
    if keep is None or any(fnmatch.fnmatchcase(layer, pat) for pat in keep):
        return tf.float32
    return tf.bfloat16


def layer_name() -> str:
    """The current variable scope below the model's (``pwcnet/predict_flow/flow2`` -> ``predict_flow/flow2``)."""
    name = tf.get_variable_scope().name
    return name.split("/", 1)[1] if "/" in name else name


def to(x: tf.Tensor, dtype: tf.DType) -> tf.Tensor:
    """``x`` in ``dtype`` (itself where it already is)."""
    return x if x.dtype.base_dtype == dtype else tf.cast(x, dtype)


def concat(values: List[tf.Tensor], axis: int) -> tf.Tensor:
    """``tf.concat``; mixed float32/bfloat16 inputs are joined in bfloat16 (they feed a bfloat16 layer)."""
    dtypes = {v.dtype.base_dtype for v in values}
    if len(dtypes) > 1:
        values = [to(v, tf.bfloat16) for v in values]
    return tf.concat(values, axis=axis)


def he_normal():
    """tfoptflow's ``he_normal``: truncated normal, fan-in, scale 2."""
    return tf.variance_scaling_initializer(scale=2.0, mode="fan_in", distribution="truncated_normal")


def glorot_uniform():
    """``tf.layers``' default kernel initializer (flow outputs and up-sampling)."""
    return tf.glorot_uniform_initializer()


def leaky_relu(x: tf.Tensor, name: str = None) -> tf.Tensor:
    """Leaky ReLU with tfoptflow's slope 0.1."""
    return tf.nn.leaky_relu(x, alpha=LEAKY_ALPHA, name=name)


def conv2d(
    x: tf.Tensor,
    filters: int,
    name: str,
    stride: int = 1,
    dilation: int = 1,
    init=None,
    act: bool = True,
    reuse: bool = None,
) -> tf.Tensor:
    """3x3 SAME convolution with ``<name>/kernel`` and ``<name>/bias`` like ``tf.layers.conv2d``.

    A kernel larger than ``conv_split_bytes()`` is applied as several convolutions over groups of output
    channels, concatenated: every output channel is computed exactly as by one convolution (bit-identical),
    but each group's kernel fits the CPU's L2 cache, where oneDNN runs it faster (measured: benchmarks/RESULTS.md;
    the context networks' first layer, 565-661 -> 128 channels, is a quarter of lg-6-2's multiply-adds).
    """
    with tf.variable_scope(name, reuse=reuse):
        x = to(x, compute_dtype(layer_name()))
        kernel, bias = conv_variables(x, filters, init)
        return _conv_grouped(x, kernel, bias, stride, dilation, act)


def conv_variables(x: tf.Tensor, filters: int, init=None) -> Tuple[tf.Tensor, tf.Tensor]:
    """``kernel`` [3, 3, in, filters] and ``bias`` of a 3x3 convolution on ``x`` in the current variable scope,
    cast to ``x``'s dtype."""
    in_ch = x.get_shape().as_list()[-1]
    kernel = tf.get_variable("kernel", [3, 3, in_ch, filters], tf.float32, initializer=init or glorot_uniform())
    bias = tf.get_variable("bias", [filters], tf.float32, initializer=tf.zeros_initializer())
    return tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)


def _conv_grouped(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, stride: int, dilation: int, act: bool):
    """The convolution of ``conv2d``, split into output-channel groups at the L2 limit."""
    in_ch, filters = kernel.get_shape().as_list()[2:]
    groups = _conv_groups(9 * in_ch * filters * 4, filters)  # float32 bytes: bf16 runs best split alike (measured)
    if len(groups) == 1:
        return _conv_bias_act(x, kernel, bias, stride, dilation, act)
    outs = [_conv_bias_act(x, k, b, stride, dilation, act)
            for k, b in zip(tf.split(kernel, groups, axis=3), tf.split(bias, groups))]
    return tf.concat(outs, axis=3)


def shared_input_convs(x: tf.Tensor, heads: List[Tuple[tf.Tensor, tf.Tensor, bool]]) -> List[tf.Tensor]:
    """Several 3x3 stride-1 convolutions of the same ``x`` (``(kernel, bias, act)`` each) as one convolution
    over their concatenated output channels, split afterwards.

    Every output channel is the same dot product as in its own convolution; the input is read (and, on
    TF 1.15's Eigen kernels, im2col-packed) once instead of once per head: a 2-channel flow head alone costs
    Eigen as much packing as a 128-channel layer (lg-6-2's level-2 flow head: ~190 ms of a 1.15 s forward).
    """
    kernel = tf.concat([k for k, _, _ in heads], axis=3)
    bias = tf.concat([b for _, b, _ in heads], axis=0)
    y = _conv_grouped(x, kernel, bias, 1, 1, act=False)
    outs = tf.split(y, [k.get_shape().as_list()[3] for k, _, _ in heads], axis=3)
    return [leaky_relu(o) if act else o for o, (_, _, act) in zip(outs, heads)]


def _conv_bias_act(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor, stride: int, dilation: int, act: bool):
    if dilation == 1:
        y = tf.nn.conv2d(x, kernel, strides=[1, stride, stride, 1], padding="SAME")
    else:  # nn.convolution: TF 1.15's CPU kernels have no dilated Conv2D gradient; this form works everywhere
        y = tf.nn.convolution(x, kernel, padding="SAME", dilation_rate=[dilation, dilation])
    y = tf.nn.bias_add(y, bias)
    return leaky_relu(y) if act else y


def _conv_groups(kernel_bytes: int, filters: int) -> List[int]:
    """Output-channel group sizes (multiples of 16 where possible) keeping each group's kernel under the limit."""
    limit = conv_split_bytes()
    if not limit or kernel_bytes <= limit or filters < 32:
        return [filters]
    n = -(-kernel_bytes // limit)
    size = min(filters, 16 * -(-filters // (16 * n)))
    groups = [size] * (filters // size) + ([filters % size] if filters % size else [])
    return groups


def deconv2x(x: tf.Tensor, name: str) -> tf.Tensor:
    """Learned x2 up-sampling to 2 channels: 4x4 stride-2 SAME transpose conv (kernel [4, 4, 2, in])."""
    in_ch = x.get_shape().as_list()[-1]
    with tf.variable_scope(name):
        x = to(x, compute_dtype(layer_name()))
        kernel = tf.get_variable("kernel", [4, 4, 2, in_ch], tf.float32, initializer=glorot_uniform())
        bias = tf.get_variable("bias", [2], tf.float32, initializer=tf.zeros_initializer())
        shape = tf.shape(x)
        out_shape = tf.stack([shape[0], shape[1] * 2, shape[2] * 2, 2])
        y = tf.nn.conv2d_transpose(x, tf.cast(kernel, x.dtype), out_shape, [1, 2, 2, 1], padding="SAME")
        static = x.get_shape().as_list()
        y.set_shape([static[0], _times2(static[1]), _times2(static[2]), 2])
        return tf.nn.bias_add(y, tf.cast(bias, x.dtype))


def _times2(n):
    return None if n is None else 2 * n


COSTVOL_BLOCK = 16  # columns per block of the fused cost volume (>= 2 * search range)


def cost_volume(c1: tf.Tensor, c2: tf.Tensor, search_range: int = 4, impl: str = "fused", name: str = None,
                layer: str = "cost_volume"):
    """Partial cost volume: channel ``(2r+1)*dy + dx`` = mean_c(c1 * c2 shifted by (dy-r, dx-r)).

    ``c2`` is zero-padded by ``r``; the result goes through leaky ReLU 0.1 (as tfoptflow).
    ``fused``: blocked batched matmuls, one per vertical offset (see ``_cost_volume_matmul``);
    ``reference``: tfoptflow's chain of (2r+1)^2 slice/multiply/mean ops;
    ``patches``: all (2r+1)^2 shifted copies from one ``extract_image_patches`` op (slow on CPU, kept for
    comparison). All three compute the same numbers up to float32 summation order (~1e-7 relative).
    ``layer``: its name for ``compute_dtype``.
    """
    dtype = compute_dtype(layer)
    c1, c2 = to(c1, dtype), to(c2, dtype)
    r = search_range
    d = 2 * r + 1
    if impl == "fused":
        return leaky_relu(_cost_volume_matmul(c1, c2, r), name=name)
    padded = tf.pad(c2, [[0, 0], [r, r], [r, r], [0, 0]])
    if impl == "reference":
        h, w = tf.shape(c1)[1], tf.shape(c1)[2]
        costs = []
        for dy in range(d):
            for dx in range(d):
                shifted = tf.slice(padded, [0, dy, dx, 0], [-1, h, w, -1])
                costs.append(tf.reduce_mean(c1 * shifted, axis=3, keepdims=True))
        cv = tf.concat(costs, axis=3)
    elif impl == "patches":
        ch = c1.get_shape().as_list()[-1]
        patches = tf.image.extract_patches(
            padded, sizes=[1, d, d, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1], padding="VALID"
        ) if hasattr(tf.image, "extract_patches") else tf.extract_image_patches(
            padded, ksizes=[1, d, d, 1], strides=[1, 1, 1, 1], rates=[1, 1, 1, 1], padding="VALID"
        )
        shape = tf.shape(c1)
        patches = tf.reshape(patches, tf.stack([shape[0], shape[1], shape[2], d * d, ch]))
        cv = tf.reduce_mean(patches * tf.expand_dims(c1, 3), axis=4)
    else:
        raise ValueError("unknown cost volume implementation %r (one of %s)" % (impl, COSTVOL_IMPLS))
    return leaky_relu(cv, name=name)


def _cost_volume_matmul(c1: tf.Tensor, c2: tf.Tensor, r: int, block: int = COSTVOL_BLOCK) -> tf.Tensor:
    """The cost volume (before leaky ReLU) as (2r+1) batched matmuls over blocks of ``t`` columns.

    Per row and block, the ``t`` feature vectors of ``c1`` are multiplied with the ``t + 2r`` vectors of
    the zero-padded ``c2`` they can see at one vertical offset: a [t, C] x [C, t + 2r] matmul whose
    diagonal band ``m[i, i + dx]`` holds the 2r+1 horizontal offsets. The band is read with a reshape
    ("skew": pad each row by one, so column ``dx`` of the re-shaped matrix is ``m[i, i + dx]``). Matmuls
    do (t + 2r)/(2r+1) times the multiply-adds of the direct sum, but at GEMM speed and with only plain
    ops (pad, reshape, slice, concat, matmul), whose gradients are cheap too.
    """
    d = 2 * r + 1
    t = max(int(block), 2 * r)
    ch = c1.get_shape().as_list()[-1]
    shape = tf.shape(c1)
    b, h, w = shape[0], shape[1], shape[2]
    nb = (w + t - 1) // t
    wp = nb * t
    # c1 (pre-divided by C: the mean) in blocks of t columns, zero-padded on the right to a multiple of t
    a = tf.pad(c1 * (1.0 / ch), tf.stack([[0, 0], [0, 0], [0, wp - w], [0, 0]]))
    a = tf.reshape(a, tf.stack([b, h, nb, t, ch]))
    # c2 padded by r like the reference (plus zeros on the right); block j's window = its t columns + 2r more
    c2p = tf.pad(c2, tf.stack([[0, 0], [r, r], [r, wp - w + t - r], [0, 0]]))
    blocks = tf.reshape(c2p, tf.stack([b, h + 2 * r, nb + 1, t, ch]))
    win = tf.concat([tf.slice(blocks, [0, 0, 0, 0, 0], tf.stack([-1, -1, nb, -1, -1])),
                     tf.slice(blocks, [0, 0, 1, 0, 0], tf.stack([-1, -1, nb, 2 * r, -1]))], axis=3)
    lead = tf.stack([b, h, nb])
    rows = []
    for dy in range(d):
        rows_dy = tf.slice(win, [0, dy, 0, 0, 0], tf.stack([-1, h, -1, -1, -1]))
        m = tf.matmul(a, rows_dy, transpose_b=True)  # [b, h, nb, t, t + 2r]
        flat = tf.pad(tf.reshape(m, tf.concat([lead, [t * (t + 2 * r)]], 0)), [[0, 0], [0, 0], [0, 0], [0, t]])
        skew = tf.reshape(flat, tf.concat([lead, [t, t + d]], 0))
        rows.append(tf.slice(skew, [0, 0, 0, 0, 0], [-1, -1, -1, -1, d]))  # [b, h, nb, t, d]: dx
    cv = tf.reshape(tf.concat(rows, axis=4), tf.stack([b, h, wp, d * d]))  # channel = d * dy + dx
    cv = tf.slice(cv, [0, 0, 0, 0], tf.stack([-1, -1, w, -1]))
    cv.set_shape(c1.get_shape()[:3].concatenate([d * d]))
    return cv


def _bilinear_setup(size: tf.Tensor, q: tf.Tensor) -> Tuple[tf.Tensor, tf.Tensor]:
    """Clamped floor index and clamped fraction along one axis (tf.contrib dense_image_warp rule)."""
    max_floor = tf.cast(size - 2, q.dtype)
    q = tf.where(tf.is_finite(q), q, tf.zeros_like(q))  # NaN/Inf flow must not become a wild gather index
    floor = tf.minimum(tf.maximum(0.0, tf.floor(q)), max_floor)
    alpha = tf.minimum(tf.maximum(0.0, q - floor), 1.0)
    return tf.cast(floor, tf.int32), tf.expand_dims(alpha, -1)


def warp(image: tf.Tensor, flow: tf.Tensor, impl: str = "fused", name: str = None, layer: str = "warp") -> tf.Tensor:
    """tfoptflow's backward warp: sample ``image`` at (row - flow[...,0], col - flow[...,1]).

    Channel 0 is subtracted from the *row* coordinate: tfoptflow's known quirk (its issues #6
    and #33), kept because its checkpoints were trained with it. Bilinear, border-clamped.
    ``fused`` fetches the four corners with one gather; ``reference`` with four. Coordinates are float32
    always; the interpolation runs in ``compute_dtype(layer)``.
    """
    image, flow = to(image, compute_dtype(layer)), to(flow, tf.float32)
    with tf.name_scope(name or "warp"):
        shape = tf.shape(image)
        b, h, w, c = shape[0], shape[1], shape[2], shape[3]
        gy, gx = tf.meshgrid(tf.range(h), tf.range(w), indexing="ij")
        grid = tf.cast(tf.stack([gy, gx], axis=2), flow.dtype)
        query = tf.reshape(tf.expand_dims(grid, 0) - flow, tf.stack([b, h * w, 2]))
        y0, ay = _bilinear_setup(h, query[:, :, 0])
        x0, ax = _bilinear_setup(w, query[:, :, 1])
        ay, ax = tf.cast(ay, image.dtype), tf.cast(ax, image.dtype)
        flat = tf.reshape(image, tf.stack([b * h * w, c]))
        base = tf.reshape(tf.range(b) * h * w, [-1, 1])
        corners = [(y0, x0), (y0, x0 + 1), (y0 + 1, x0), (y0 + 1, x0 + 1)]
        if impl == "fused":
            idx = tf.stack([base + yy * w + xx for yy, xx in corners], axis=0)  # corner axis first: unstack is cheap
            vals = tf.reshape(tf.gather(flat, idx), tf.stack([4, b, h * w, c]))
            tl, tr, bl, br = tf.unstack(vals, num=4, axis=0)
        elif impl == "reference":
            tl, tr, bl, br = [
                tf.reshape(tf.gather(flat, base + yy * w + xx), tf.stack([b, h * w, c])) for yy, xx in corners
            ]
        else:
            raise ValueError("unknown warp implementation %r" % impl)
        top = ax * (tr - tl) + tl
        bottom = ax * (br - bl) + bl
        out = ay * (bottom - top) + top
        return tf.reshape(out, tf.shape(image))


def resize_bilinear_legacy(x: tf.Tensor, size) -> tf.Tensor:
    """TF1's bilinear resize (align_corners=False, half_pixel_centers=False), as tfoptflow uses."""
    return tf.image.resize_bilinear(x, size, align_corners=False, half_pixel_centers=False)

"""What a graph built now is tuned for: the backend (oneDNN or Eigen CPU, GPU, Ascend), and the formulations,
L2 convolution split and shared flow/context heads that ``auto`` picks for it (``AUTO``, measured:
``benchmarks/RESULTS.md``), with their overrides (environment, context managers) and the log line naming them.
``ops`` builds the graph; this module only decides how.
"""

import contextlib
import glob
import os
import sys
from typing import Iterator, Optional, Tuple

from pwcflow.tf1 import IS_TF1, TF_VERSION, tf

COSTVOL_IMPLS = ("fused", "reference", "patches")
WARP_IMPLS = ("fused", "reference")
_conv_split_bytes: Optional[int] = None  # None: decided on first use by ``default_conv_split_bytes``
_shared_override: Optional[bool] = None  # set by ``plain_convolutions``; None: ``shared_heads`` decides
SPLIT_ENV = "PWCFLOW_CONV_SPLIT_BYTES"  # overrides the automatic convolution split limit (0: never split)
SHARED_ENV = "PWCFLOW_SHARED_HEADS"  # overrides whether flow head + first context layer share one conv (0 / 1)
# backend -> (cost volume, warp, split convolutions at the L2 limit, shared flow/context heads): what ``auto``
# builds, chosen by measurement on TF 2.21 (oneDNN) and TF 1.15.5 (Eigen); the figures are in
# benchmarks/RESULTS.md. The blocked-matmul cost volume and the one-gather warp win on both; the L2 split pays
# under oneDNN only; one convolution for the flow head and the first context layer (``ops.shared_input_convs``)
# pays under Eigen only. GPUs and Ascend have no L2 cliff: a split only adds ops there; sharing is unmeasured
# there, so off.
AUTO = {"onednn": ("fused", "fused", True, False), "eigen": ("fused", "fused", False, True),
        "gpu": ("fused", "fused", False, False), "npu": ("fused", "fused", False, False)}


def conv_split_bytes() -> int:
    """Largest conv kernel (bytes) built as one convolution; 0 = never split (see ``conv2d``)."""
    global _conv_split_bytes
    if _conv_split_bytes is None:
        _conv_split_bytes = default_conv_split_bytes()
    return _conv_split_bytes


def default_conv_split_bytes() -> int:
    """``$PWCFLOW_CONV_SPLIT_BYTES`` if set; else 3/4 of the CPU's L2 cache per core (1 MiB if unknown) where
    ``AUTO`` says to split (CPUs under oneDNN), 0 (off) elsewhere (Eigen, GPUs, Ascend: see ``AUTO``)."""
    env = os.environ.get(SPLIT_ENV, "").strip()
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            from pwcflow.errors import UserError

            raise UserError("bad setting %s=%r: must be a number of bytes (0: never split)" % (SPLIT_ENV, env))
    return 3 * _l2_cache_bytes() // 4 if AUTO[backend()][2] else 0


def shared_heads() -> bool:
    """Whether a level's flow head and first context layer are built as one convolution: ``$PWCFLOW_SHARED_HEADS``
    (0 / 1) if set, else ``AUTO``'s choice for ``backend()``."""
    if _shared_override is not None:
        return _shared_override
    env = os.environ.get(SHARED_ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    if env:
        from pwcflow.errors import UserError

        raise UserError("bad setting %s=%r: must be 0 or 1" % (SHARED_ENV, env))
    return AUTO[backend()][3]


def onednn_enabled() -> bool:
    """Whether this TensorFlow runs its CPU kernels with oneDNN (TF 2.x x86 default; ``TF_ENABLE_ONEDNN_OPTS=0``
    turns it off) rather than Eigen (TF 1.15's pip builds)."""
    try:
        if IS_TF1:
            from tensorflow.python import pywrap_tensorflow as util
        else:
            from tensorflow.python.util import _pywrap_util_port as util
        return bool(util.IsMklEnabled())
    except (ImportError, AttributeError):
        return False


def backend() -> str:
    """What runs a graph built now: ``npu`` (Ascend's adapter loaded), ``gpu``, ``onednn`` or ``eigen`` (CPU)."""
    if "npu_bridge" in sys.modules:
        return "npu"
    try:
        if tf.config.experimental.list_physical_devices("GPU"):
            return "gpu"
    except Exception:  # noqa: BLE001 - device query unsupported: assume a CPU
        pass
    return "onednn" if onednn_enabled() else "eigen"


def resolve(costvol_impl: str, warp_impl: str) -> Tuple[str, str]:
    """The (cost volume, warp) formulations to build: ``auto`` replaced by ``AUTO``'s choice for ``backend()``."""
    if costvol_impl not in COSTVOL_IMPLS + ("auto",):
        raise ValueError("unknown cost volume implementation %r (one of auto, %s)" % (costvol_impl, COSTVOL_IMPLS))
    if warp_impl not in WARP_IMPLS + ("auto",):
        raise ValueError("unknown warp implementation %r (one of auto, %s)" % (warp_impl, WARP_IMPLS))
    chosen = AUTO[backend()] if "auto" in (costvol_impl, warp_impl) else None
    return (chosen[0] if costvol_impl == "auto" else costvol_impl), (chosen[1] if warp_impl == "auto" else warp_impl)


def describe(costvol_impl: str = "auto", warp_impl: str = "auto") -> str:
    """One line for the log: the formulations a graph built now gets, and why."""
    cv, wp = resolve(costvol_impl, warp_impl)
    split = conv_split_bytes()
    return "cost volume %s%s, warp %s%s, conv split %s, shared flow/context heads %s (backend %s, TensorFlow %s)" % (
        cv, " (auto)" if costvol_impl == "auto" else "", wp, " (auto)" if warp_impl == "auto" else "",
        "at %d KiB" % (split // 1024) if split else "off", "on" if shared_heads() else "off", backend(), TF_VERSION)


def describe_auto() -> str:
    """``describe()`` of the defaults."""
    return describe("auto", "auto")


def _l2_cache_bytes(default: int = 1 << 20) -> int:
    for folder in sorted(glob.glob("/sys/devices/system/cpu/cpu0/cache/index*")):
        try:
            with open(folder + "/level") as f:
                level = f.read().strip()
            with open(folder + "/size") as f:
                size = f.read().strip().upper()
        except OSError:
            continue
        if level == "2" and size:
            scale = {"K": 1 << 10, "M": 1 << 20}.get(size[-1], 1)
            return int(size.rstrip("KM")) * scale
    return default


@contextlib.contextmanager
def conv_splitting(limit_bytes: Optional[int]) -> Iterator[None]:
    """Build the graph's convolutions under another kernel-size limit (0: one convolution per layer, as
    tfoptflow; None: the machine's default), e.g. for the baseline of a benchmark."""
    global _conv_split_bytes
    saved = _conv_split_bytes
    _conv_split_bytes = default_conv_split_bytes() if limit_bytes is None else int(limit_bytes)
    try:
        yield
    finally:
        _conv_split_bytes = saved


@contextlib.contextmanager
def plain_convolutions() -> Iterator[None]:
    """Build one convolution per layer and per head, as tfoptflow does (no L2 split, no shared heads): graphs
    that must not depend on the building host (exports for other devices) and baselines."""
    global _shared_override
    saved = _shared_override
    _shared_override = False
    try:
        with conv_splitting(0):
            yield
    finally:
        _shared_override = saved

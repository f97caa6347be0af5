"""``device.precision``: fp32 (default) or bf16 on CPUs with bfloat16 units (AVX512-BF16, AMX).

bf16 builds the network in bfloat16 compute (``model.ops.bf16``): convolutions, the cost volume's matmuls and
the warp's interpolation take bfloat16 activations and bfloat16 copies of the float32 variables, and activations
stay bfloat16 from layer to layer (no casts back to float32 between them); the layers named by
``device.bf16_fp32_layers`` (fnmatch patterns on ``model.ops.layer_name``: ``featpyr/conv1a``,
``predict_flow/flow2``, ``ctxt/dc_conv27``, ``upsample/up_flow3``, ``cost_volume6``, ``warp5``) compute in
float32, and every level's flow leaves in float32. The default list was chosen by measurement
(``benchmarks/bench_bf16.py``, benchmarks/RESULTS.md): the first pyramid level, the flow heads and the context
network's last two layers, which together hold ~5 % of the multiply-adds and bring the eval fixture's EPE
change within 0.01 px. Variables (checkpoints, master weights, optimizer slots) stay float32 in training too:
the gradients flow back through the casts, so the backward convolutions run in bfloat16 and the updates in
float32; bfloat16 has float32's range, so no loss scaling. ``tests/device/test_precision.py``.
"""

import contextlib
import re
from typing import ContextManager, Optional, Sequence, Tuple

from pwcflow.config.groups import DeviceConfig
from pwcflow.errors import UserError
from pwcflow.tf1 import IS_TF1, TF_VERSION

PRECISIONS = ("fp32", "bf16")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` is unreadable)."""
    try:
        with open(path) as f:
            m = re.search(r"^flags\s*:\s*(.*)$", f.read(), re.M)
    except OSError:
        return set()
    return set(m.group(1).split()) if m else set()


def bf16_unit(flags: Optional[set] = None) -> Optional[str]:
    """The CPU's bfloat16 unit (``amx_bf16`` / ``avx512_bf16``), or None."""
    flags = cpu_flags() if flags is None else flags
    return next((f for f in reversed(BF16_FLAGS) if f in flags), None)


def check(dev: DeviceConfig, flags: Optional[set] = None) -> str:
    """``device.precision`` for this machine (fp32 where the profile has no ``precision`` key); a one-line
    ``UserError`` where bf16 cannot run here (its value and profile were checked by ``DeviceConfig``)."""
    if dev.precision != "bf16":
        return "fp32"
    if bf16_unit(flags) is None:
        raise UserError("bad setting device.precision: bf16 needs a CPU with AVX512-BF16 or AMX; this one has "
                        "neither (use precision=fp32)")
    from pwcflow.model import tuning

    if IS_TF1 or not tuning.onednn_enabled():
        raise UserError("bad setting device.precision: bf16 needs TensorFlow 2.x with oneDNN (this is TensorFlow "
                        "%s%s)" % (TF_VERSION, "" if IS_TF1 else " with TF_ENABLE_ONEDNN_OPTS=0"))
    return "bf16"


def fp32_layers(dev: DeviceConfig) -> Optional[Tuple[str, ...]]:
    """The float32 keep-list of a bf16 graph for ``dev`` (checked first), or None where the graph is float32."""
    return tuple(dev.bf16_fp32_layers or ()) if check(dev) == "bf16" else None


def graph(keep: Optional[Sequence[str]]) -> ContextManager:
    """The context to build the network in: bfloat16 keeping ``keep`` in float32, or float32 where None."""
    from pwcflow.model import ops

    return contextlib.nullcontext() if keep is None else ops.bf16(keep)

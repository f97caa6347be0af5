"""``device.precision``: fp32 (default) or bf16 on CPUs with bfloat16 units (AVX512-BF16, AMX).

bf16 is TensorFlow's oneDNN bfloat16 graph rewrite (grappler ``auto_mixed_precision_onednn_bfloat16``):
convolutions and matmuls run in bfloat16 with float32 weights, inputs and outputs kept, so checkpoints,
losses and optimizers are unchanged (bfloat16 has float32's range: no loss scaling). Training sessions get the
same rewrite: the forward and the gradient convolutions/matmuls run in bfloat16 while the variables (master
weights) and their updates stay float32 (``tests/device/test_precision.py``). Its accuracy and speed
on the tfoptflow reference pair and an eval fixture are in ``benchmarks/RESULTS.md``.
"""

import re
from typing import Optional

from pwcflow.config.groups import DeviceConfig
from pwcflow.errors import UserError
from pwcflow.tf1 import IS_TF1, TF_VERSION, tf

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


def apply(cfg: tf.ConfigProto, dev: DeviceConfig) -> None:
    """Switch ``cfg`` to ``device.precision`` (checked first)."""
    if check(dev) == "bf16":
        rewrite = cfg.graph_options.rewrite_options
        rewrite.auto_mixed_precision_onednn_bfloat16 = type(rewrite).ON

"""Typed schemas of the ``device`` and ``storage`` config groups (``conf/device/*.yaml``, ``conf/storage/*.yaml``).

``commands.convert`` builds them like every other schema: values typed and range-checked once, at compose time,
each error one line naming its key (``bad setting device.intra_op_threads: ...``). Keys only some profiles
have (``precision`` on cpu, ``allow_growth``/``visible_devices`` on gpu, ``npu:`` on npu) are Optional fields:
None says the profile does not have them. What depends on the machine or the command (bf16 units, npu_bridge,
TF_CONFIG / RANK_* ranks, ``graph_run_mode`` for training vs inference) is checked by the runtime modules.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple

from pwcflow.config import npu_switches
from pwcflow.config.rules import check, ruled
from pwcflow.errors import UserError

# OBS credentials come only from these environment variables (never from a config: Hydra saves configs).
ENV_KEY, ENV_SECRET, ENV_TOKEN = "OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY", "OBS_SECURITY_TOKEN"
_SECRET_WORDS = ("secret", "access_key", "accesskey", "security_token", "password")
PROFILES = ("cpu", "gpu", "npu")
COMMUNICATIONS = ("auto", "ring", "nccl")


@dataclass(frozen=True)
class LossScale:
    """``device.loss_scale``: dynamic loss scaling (used when ``mixed_precision`` is true)."""

    init: float = ruled("one_or_more")
    incr_every_n_steps: int = ruled("at_least_1")
    incr_ratio: float = ruled("above_1")
    decr_every_n_nan_or_inf: int = ruled("at_least_1")
    decr_ratio: float = ruled("open_unit")


def check_address(addr: str, where: str) -> None:
    """``addr`` is ``host:port`` (a worker of ``device.distribute.workers`` or of TF_CONFIG)."""
    host, _, port = addr.rpartition(":")
    check(bool(host) and port.isdigit(), where, "%r is not host:port" % addr)


@dataclass(frozen=True)
class Distribute:
    """``device.distribute``: the workers of a collective all-reduce run (empty: TF_CONFIG or one process)."""

    workers: Tuple[str, ...] = field()
    rank: int = ruled("non_negative")
    communication: str = field()

    def check(self, prefix: str) -> None:
        """Addresses well formed and distinct, ``rank`` one of them, a known collective implementation."""
        check(self.communication.lower() in COMMUNICATIONS, prefix + "communication",
              "must be one of %s" % (COMMUNICATIONS,))
        for addr in self.workers:
            check_address(addr, prefix + "workers")
        check(len(set(self.workers)) == len(self.workers), prefix + "workers", "an address is listed twice")
        if self.workers:
            check(self.rank < len(self.workers), prefix + "rank",
                  "%d is not in 0..%d" % (self.rank, len(self.workers) - 1))


_KINDS = {npu_switches.B: bool, npu_switches.INT: int, npu_switches.S: str}


def _check_npu_keys(node: Any, prefix: str) -> None:
    """An unknown key under ``device.npu`` is a typo or belongs under ``device.npu.extra``."""
    known = {f.name for f in dataclasses.fields(NpuOptions)}
    unknown = sorted(set(node.keys()) - known) if node is not None else []
    if unknown:
        raise UserError("bad setting %s%s: not a known NpuOptimizer switch (put others under %sextra)"
                        % (prefix, unknown[0], prefix))


def _check_npu(self: Any, prefix: str) -> None:
    npu_switches.validate(self.switches(), self.extra, self.types)


NpuOptions = dataclasses.make_dataclass(
    "NpuOptions",
    [(key, Optional[_KINDS[kind]], field()) for key, kind in npu_switches.SWITCHES]
    + [("extra", Dict[str, Any], field()), ("types", Dict[str, str], field())],
    frozen=True,
    namespace={
        "__doc__": "``device.npu``: one field per NpuOptimizer switch (``npu_switches.SWITCHES``; None = not "
                   "written), ``extra`` (other parameter_map entries) and ``types`` (forced types of extra keys).",
        "check_node": staticmethod(_check_npu_keys),
        "check": _check_npu,
        "switches": lambda self: {key: getattr(self, key) for key, _ in npu_switches.SWITCHES},
    })


@dataclass(frozen=True)
class DeviceConfig:
    """``conf/device/{cpu,gpu,npu}.yaml``; the profile-only keys are None on the other profiles."""

    name: str = ruled("one_of", *PROFILES)
    intra_op_threads: int = ruled("non_negative")
    inter_op_threads: int = ruled("non_negative")
    xla: bool = field()
    mixed_precision: bool = field()
    loss_scale: LossScale = field()
    distribute: Distribute = field()
    precision: Optional[str] = ruled("one_of", "fp32", "bf16")
    bf16_fp32_layers: Optional[Tuple[str, ...]] = field()
    allow_growth: Optional[bool] = field()
    visible_devices: Optional[str] = field()
    npu: Optional[NpuOptions] = field()

    @staticmethod
    def check_node(node: Any, prefix: str) -> None:
        """An ``npu:`` block belongs to the npu profile only (elsewhere it would be silently ignored)."""
        if node is not None and node.get("name") in ("cpu", "gpu") and node.get("npu") is not None:
            raise UserError("bad setting %snpu: only device=npu has an npu block" % prefix)

    def check(self, prefix: str) -> None:
        """What the profile needs and refuses."""
        check(not (self.xla and self.name == "npu"), prefix + "xla",
              "XLA must stay off on npu (the Ascend graph compiler replaces it)")
        check(self.precision != "bf16" or self.name == "cpu", prefix + "precision",
              "bf16 is for device=cpu (gpu: device.mixed_precision=true; npu: device.npu.precision_mode)")
        devices = (self.visible_devices or "").replace(" ", "")
        check(devices in ("", "local") or all(p.isdigit() for p in devices.split(",")), prefix + "visible_devices",
              "expected GPU indices such as 0 or 0,1, or 'local'")
        if self.name == "gpu" and self.allow_growth is None:
            raise UserError("missing required setting: add %sallow_growth=true|false to the command line" % prefix)
        if self.name == "npu" and self.npu is None:
            raise UserError("missing required setting: device=npu needs the %snpu block (conf/device/npu.yaml)"
                            % prefix)


def check_no_secrets(node: Any) -> None:
    """Refuse credentials placed in the ``storage`` config node (at compose time, ``StorageConfig``): Hydra would
    save them into every run dir."""
    for key in list(node.keys()) if node is not None else []:
        if any(word in str(key).lower() for word in _SECRET_WORDS):
            raise UserError("storage.%s looks like a credential: remove it from the config and set %s and %s in "
                            "the environment instead" % (key, ENV_KEY, ENV_SECRET))


@dataclass(frozen=True)
class StorageConfig:
    """``conf/storage/{local,obs}.yaml``: where ``obs://`` inputs are cached, the run mirror, the OBS client.

    Credentials are never settings: a key that looks like one is refused (``check_no_secrets``)."""

    name: str = ruled("one_of", "local", "obs")
    output_url: Optional[str] = field()
    cache_dir: Optional[str] = field()
    endpoint: Optional[str] = field()
    region: Optional[str] = field()
    path_style: bool = field()
    signature: str = ruled("one_of", "obs", "v4", "v2")
    retries: int = ruled("non_negative")
    backoff_s: float = ruled("non_negative")
    workers: int = ruled("non_negative")

    @staticmethod
    def check_node(node: Any, prefix: str) -> None:
        """No key of the node looks like a credential (Hydra saves the config into every run dir)."""
        check_no_secrets(node)


GROUPS = {"device": DeviceConfig, "storage": StorageConfig}

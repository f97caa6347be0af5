"""Device profiles (the ``device`` config group): session configs, the lazy npu_bridge import, mixed precision.

``device=cpu|gpu|npu`` is the only change between machines. Every ``ConfigProto`` here is built from
protobufs alone, never from npu_bridge, so each profile can be checked field by field on any machine;
only ``prepare`` and ``wrap_optimizer`` on ``npu`` import Ascend's adapter.
"""

import importlib
from types import SimpleNamespace
from typing import Any, List, Optional

from omegaconf import DictConfig, OmegaConf

from pwcflow.errors import UserError
from pwcflow.runtime import npu_options, precision
from pwcflow.tf1 import tf

PROFILES = ("cpu", "gpu", "npu")
NPU_MISSING = ("device=npu needs Ascend's TensorFlow 1.15 adapter (npu_bridge): install the CANN toolkit and its "
               "TensorFlow plugin (tfplugin) on an Ascend machine, or choose device=cpu or device=gpu")

# NpuOptimizer switches named in conf/device/npu.yaml -> parameter_map field (b=bool, i=int, s=bytes); the type
# written is the adapter's (npu_options.TYPES). A key set to null is not written, so CANN applies its own default.
# Other keys go under ``npu.extra``; ``npu.types: {key: b|i|s}`` forces the type of a key not in TYPES.
NPU_SWITCHES = (
    ("use_off_line", "b"), ("precision_mode", "s"), ("precision_mode_v2", "s"), ("mix_compile_mode", "b"),
    ("graph_run_mode", "i"), ("iterations_per_loop", "i"), ("enable_data_pre_proc", "b"), ("hcom_parallel", "b"),
    ("op_debug_level", "i"), ("enable_exception_dump", "i"), ("enable_dump", "b"), ("dump_path", "s"),
    ("dump_step", "s"), ("dump_mode", "s"), ("enable_dump_debug", "b"), ("dump_debug_mode", "s"),
    ("modify_mixlist", "s"), ("fusion_switch_file", "s"), ("op_select_implmode", "s"),
    ("optypelist_for_implmode", "s"), ("variable_format_optimize", "b"), ("deterministic", "i"),
    ("session_device_id", "i"), ("op_compiler_cache_mode", "s"), ("op_compiler_cache_dir", "s"),
    ("debug_dir", "s"), ("profiling_mode", "b"), ("profiling_options", "s"),
)
PRECISION_MODES = ("allow_fp32_to_fp16", "force_fp16", "force_fp32", "cube_fp16in_fp32out", "must_keep_origin_dtype",
                   "allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "allow_fp32_to_bf16")
PRECISION_MODES_V2 = ("fp16", "origin", "cube_fp16in_fp32out", "mixed_float16", "mixed_bfloat16")
MIXED_MODES = ("allow_mix_precision", "allow_mix_precision_fp16", "allow_mix_precision_bf16", "mixed_float16",
               "mixed_bfloat16")


def _bad(key: str, why: str) -> UserError:
    return UserError("bad setting device.%s: %s" % (key, why))


def _plain(node: Any) -> dict:
    """A config sub-block as a plain dict (``{}`` when absent)."""
    if node is None:
        return {}
    return dict(OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node)


def profile(dev: DictConfig) -> str:
    """``device.name``, checked: cpu, gpu or npu."""
    name = str(dev.get("name", "cpu"))
    if name not in PROFILES:
        raise _bad("name", "must be one of %s (pick the profile with device=cpu|gpu|npu)" % (PROFILES,))
    return name


def visible_devices(dev: DictConfig, local_rank: int = 0) -> Optional[str]:
    """``device.visible_devices`` as TF's ``visible_device_list`` ("local" = this worker's index on its host)."""
    value = dev.get("visible_devices")
    if value is None or str(value) == "":
        return None
    value = str(value).replace(" ", "")
    if value == "local":
        return str(local_rank)
    if not all(part.isdigit() for part in value.split(",")):
        raise _bad("visible_devices", "expected GPU indices such as 0 or 0,1, or 'local'")
    return value


def base_config(dev: DictConfig, local_rank: int = 0, training: bool = True) -> tf.ConfigProto:
    """The device profile's ``ConfigProto`` before any distribution engine adds its options."""
    name = profile(dev)
    cfg = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    cfg.intra_op_parallelism_threads = int(dev.get("intra_op_threads", 0) or 0)
    cfg.inter_op_parallelism_threads = int(dev.get("inter_op_threads", 0) or 0)
    jit = type(cfg.graph_options.optimizer_options)
    rewrite = cfg.graph_options.rewrite_options
    if bool(dev.get("xla", False)):
        if name == "npu":
            raise _bad("xla", "XLA must stay off on npu (the Ascend graph compiler replaces it)")
        cfg.graph_options.optimizer_options.global_jit_level = jit.ON_1
    if name == "gpu":
        cfg.gpu_options.allow_growth = bool(dev.get("allow_growth", True))
        devices = visible_devices(dev, local_rank)
        if devices is not None:
            cfg.gpu_options.visible_device_list = devices
        if bool(dev.get("mixed_precision", False)):
            rewrite.auto_mixed_precision = type(rewrite).ON
    elif name == "npu":
        _npu_options(cfg, dev, training)
    precision.apply(cfg, dev)
    return cfg


def _npu_options(cfg: tf.ConfigProto, dev: DictConfig, training: bool) -> None:
    """Add the ``NpuOptimizer`` custom optimizer and the rewrites Ascend's adapter requires off."""
    npu = _plain(dev.get("npu"))
    unknown = sorted(set(npu) - {k for k, _ in NPU_SWITCHES} - {"extra", "types"})
    if unknown:
        raise _bad("npu.%s" % unknown[0], "not a known NpuOptimizer switch (put others under device.npu.extra)")
    if npu.get("graph_run_mode") is None:
        npu["graph_run_mode"] = 1 if training else 0
    _check_npu(npu, dev, training)
    forced = {str(k): str(v) for k, v in (npu.pop("types", None) or {}).items()}
    params = {k: v for k, v in list(npu.items()) + list((npu.pop("extra", None) or {}).items())
              if v is not None and k != "extra"}
    for key in forced:
        npu_options.kind_of(key, None, forced)
    npu_options.check(params)
    npu_options.make_folders(params)
    rewrite = cfg.graph_options.rewrite_options
    custom = rewrite.custom_optimizers.add()
    custom.name = "NpuOptimizer"
    for key, value in params.items():
        npu_options.write(custom, key, value, npu_options.kind_of(key, value, forced))
    rewrite.remapping = type(rewrite).OFF
    # Huawei's snippets write RewriterConfig.OFF here, the Toggle enum's 2, which this MemOptType field reads as
    # MANUAL (a no-op without manual annotations); NO_MEM_OPT is the field's own "off".
    rewrite.memory_optimization = type(rewrite).NO_MEM_OPT
    cfg.graph_options.optimizer_options.global_jit_level = type(cfg.graph_options.optimizer_options).OFF


def _check_npu(npu: dict, dev: DictConfig, training: bool) -> None:
    mode, mode2 = npu.get("precision_mode"), npu.get("precision_mode_v2")
    if mode is not None and mode2 is not None:
        raise _bad("npu.precision_mode_v2", "set precision_mode or precision_mode_v2, not both")
    if mode is not None and mode not in PRECISION_MODES:
        raise _bad("npu.precision_mode", "must be one of %s" % (PRECISION_MODES,))
    if mode2 is not None and mode2 not in PRECISION_MODES_V2:
        raise _bad("npu.precision_mode_v2", "must be one of %s" % (PRECISION_MODES_V2,))
    if training and (mode in MIXED_MODES or mode2 in MIXED_MODES) and not bool(dev.get("mixed_precision", False)):
        raise _bad("mixed_precision", "mixed fp16 on Ascend needs loss scaling: set device.mixed_precision=true "
                   "or device.npu.precision_mode=must_keep_origin_dtype")
    if npu.get("mix_compile_mode") and int(npu.get("iterations_per_loop") or 1) != 1:
        raise _bad("npu.iterations_per_loop", "must be 1 when mix_compile_mode is true")
    if npu.get("enable_dump") and npu.get("enable_dump_debug"):
        raise _bad("npu.enable_dump_debug", "enable_dump and enable_dump_debug cannot both be true")
    if (npu.get("enable_dump") or npu.get("enable_dump_debug")) and not npu.get("dump_path"):
        raise _bad("npu.dump_path", "dumping needs a dump_path directory")
    if npu.get("profiling_mode") and not npu.get("profiling_options"):
        raise _bad("npu.profiling_options", "profiling_mode needs profiling_options (a JSON string)")


def session_config(dev: DictConfig, engine: Any = None, training: bool = True) -> tf.ConfigProto:
    """The ``ConfigProto`` for ``cfg.device``, with the distribution engine's options when one is given.

    ``training=False`` (predict/eval) only changes the NPU's default ``graph_run_mode`` to 0 (inference).
    """
    cfg = base_config(dev, int(getattr(engine, "local_rank", 0)), training)
    return engine.session_config(cfg) if engine is not None else cfg


def npu_modules() -> SimpleNamespace:
    """Import the parts of npu_bridge pwcflow uses; one-sentence ``UserError`` when it is not installed."""
    names = {
        "npu_ops": "npu_bridge.estimator.npu_ops",
        "loss_scale_optimizer": "npu_bridge.estimator.npu.npu_loss_scale_optimizer",
        "loss_scale_manager": "npu_bridge.estimator.npu.npu_loss_scale_manager",
        "optimizer": "npu_bridge.estimator.npu.npu_optimizer",
        "hook": "npu_bridge.estimator.npu.npu_hook",
        "hccl_ops": "npu_bridge.hccl.hccl_ops",
    }
    try:
        return SimpleNamespace(**{key: importlib.import_module(mod) for key, mod in names.items()})
    except ImportError as exc:
        raise UserError(NPU_MISSING) from exc


def prepare(dev: DictConfig) -> None:
    """Check the profile and, on npu, load Ascend's adapter (which registers ``NpuOptimizer``) before graphs exist."""
    base_config(dev)
    if profile(dev) == "npu":
        npu_modules()


def _loss_scale(dev: DictConfig) -> dict:
    ls = _plain(dev.get("loss_scale"))
    out = {"init": float(ls.get("init", 2.0 ** 15)), "incr_every_n_steps": int(ls.get("incr_every_n_steps", 2000)),
           "decr_every_n_nan_or_inf": int(ls.get("decr_every_n_nan_or_inf", 2)),
           "incr_ratio": float(ls.get("incr_ratio", 2.0)), "decr_ratio": float(ls.get("decr_ratio", 0.5))}
    if out["init"] < 1 or out["incr_every_n_steps"] < 1 or out["incr_ratio"] <= 1 or not 0 < out["decr_ratio"] < 1:
        raise _bad("loss_scale", "need init >= 1, incr_every_n_steps >= 1, incr_ratio > 1 and 0 < decr_ratio < 1")
    return out


def wrap_optimizer(opt: tf.train.Optimizer, dev: DictConfig, distributed: bool = False) -> tf.train.Optimizer:
    """Dynamic loss scaling when ``device.mixed_precision`` is true; otherwise ``opt`` unchanged.

    npu: ``NPULossScaleOptimizer`` + ``ExponentialUpdateLossScaleManager`` (Ascend 910 saturates fp16 overflow
    instead of producing Inf/NaN, so only its float-status check sees it); ``distributed`` all-reduces that
    overflow flag so every rank skips the same steps. cpu/gpu: TF's ``MixedPrecisionLossScaleOptimizer`` with a
    ``DynamicLossScale`` (its one ``incr_ratio`` also divides on overflow; ``decr_*`` keys are NPU-only).
    Gradient all-reduce is the distribution engine's job, not this wrapper's.
    """
    if not bool(dev.get("mixed_precision", False)):
        return opt
    ls = _loss_scale(dev)
    if profile(dev) == "npu":
        npu = npu_modules()
        manager = npu.loss_scale_manager.ExponentialUpdateLossScaleManager(
            init_loss_scale=ls["init"], incr_every_n_steps=ls["incr_every_n_steps"],
            decr_every_n_nan_or_inf=ls["decr_every_n_nan_or_inf"], incr_ratio=ls["incr_ratio"],
            decr_ratio=ls["decr_ratio"])
        return npu.loss_scale_optimizer.NPULossScaleOptimizer(opt, manager, is_distributed=bool(distributed))
    scale = tf.train.experimental.DynamicLossScale(initial_loss_scale=ls["init"],
                                                   increment_period=ls["incr_every_n_steps"],
                                                   multiplier=ls["incr_ratio"])
    return tf.train.experimental.MixedPrecisionLossScaleOptimizer(opt, scale)


def local_index(addresses: List[str], rank: int) -> int:
    """How many of the workers before ``rank`` share its host: the GPU index for ``visible_devices=local``."""
    host = addresses[rank].rsplit(":", 1)[0]
    return sum(1 for addr in addresses[:rank] if addr.rsplit(":", 1)[0] == host)

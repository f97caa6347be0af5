"""Device profiles (the ``device`` config group): session configs, the lazy npu_bridge import, mixed precision.

``device=cpu|gpu|npu`` is the only change between machines. Every ``ConfigProto`` here is built from
protobufs alone, never from npu_bridge, so each profile can be checked field by field on any machine;
only ``prepare`` and ``wrap_optimizer`` on ``npu`` import Ascend's adapter.
"""

import importlib
from types import SimpleNamespace
from typing import Any, List, Optional

from pwcflow.config import npu_switches
from pwcflow.config.groups import DeviceConfig
from pwcflow.device import precision
from pwcflow.errors import UserError
from pwcflow.tf1 import tf

NPU_MISSING = ("device=npu needs Ascend's TensorFlow 1.15 adapter (npu_bridge): install the CANN toolkit and its "
               "TensorFlow plugin (tfplugin) on an Ascend machine, or choose device=cpu or device=gpu")


def _bad(key: str, why: str) -> UserError:
    return UserError("bad setting device.%s: %s" % (key, why))


def visible_devices(dev: DeviceConfig, local_rank: int = 0) -> Optional[str]:
    """``device.visible_devices`` as TF's ``visible_device_list`` ("local" = this worker's index on its host)."""
    value = (dev.visible_devices or "").replace(" ", "")
    if not value:
        return None
    return str(local_rank) if value == "local" else value


def base_config(dev: DeviceConfig, local_rank: int = 0, training: bool = True) -> tf.ConfigProto:
    """The device profile's ``ConfigProto`` before any distribution engine adds its options."""
    cfg = tf.ConfigProto(allow_soft_placement=True, log_device_placement=False)
    cfg.intra_op_parallelism_threads = dev.intra_op_threads
    cfg.inter_op_parallelism_threads = dev.inter_op_threads
    jit = type(cfg.graph_options.optimizer_options)
    rewrite = cfg.graph_options.rewrite_options
    if dev.xla:
        cfg.graph_options.optimizer_options.global_jit_level = jit.ON_1
    if dev.name == "gpu":
        cfg.gpu_options.allow_growth = dev.allow_growth
        devices = visible_devices(dev, local_rank)
        if devices is not None:
            cfg.gpu_options.visible_device_list = devices
        if dev.mixed_precision:
            rewrite.auto_mixed_precision = type(rewrite).ON
    elif dev.name == "npu":
        _npu_options(cfg, dev, training)
    precision.check(dev)  # bf16 is built into the graph (precision.graph); refused here where it cannot run
    return cfg


def _npu_options(cfg: tf.ConfigProto, dev: DeviceConfig, training: bool) -> None:
    """Add the ``NpuOptimizer`` custom optimizer and the rewrites Ascend's adapter requires off.

    ``device.npu`` was checked at compose time (``npu_switches.validate``); what is left depends on the command:
    ``graph_run_mode`` null = 1 for training, 0 for inference, and mixed fp16 training needs loss scaling.
    """
    npu = dev.npu
    switches = npu.switches()
    if switches["graph_run_mode"] is None:
        switches["graph_run_mode"] = 1 if training else 0
    mixed = (switches["precision_mode"] in npu_switches.MIXED_MODES
             or switches["precision_mode_v2"] in npu_switches.MIXED_MODES)
    if training and mixed and not dev.mixed_precision:
        raise _bad("mixed_precision", "mixed fp16 on Ascend needs loss scaling: set device.mixed_precision=true "
                   "or device.npu.precision_mode=must_keep_origin_dtype")
    params = npu_switches.params_of(switches, npu.extra)
    npu_switches.make_folders(params)
    rewrite = cfg.graph_options.rewrite_options
    custom = rewrite.custom_optimizers.add()
    custom.name = "NpuOptimizer"
    for key, value in params.items():
        npu_switches.write(custom, key, value, npu_switches.kind_of(key, value, npu.types))
    rewrite.remapping = type(rewrite).OFF
    # Huawei's snippets write RewriterConfig.OFF here, the Toggle enum's 2, which this MemOptType field reads as
    # MANUAL (a no-op without manual annotations); NO_MEM_OPT is the field's own "off".
    rewrite.memory_optimization = type(rewrite).NO_MEM_OPT
    cfg.graph_options.optimizer_options.global_jit_level = type(cfg.graph_options.optimizer_options).OFF


def session_config(dev: DeviceConfig, engine: Any = None, training: bool = True) -> tf.ConfigProto:
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


def prepare(dev: DeviceConfig) -> None:
    """Check what depends on this machine and, on npu, load Ascend's adapter (which registers
    ``NpuOptimizer``) before graphs exist."""
    base_config(dev)
    if dev.name == "npu":
        npu_modules()


class CountApplied(tf.train.Optimizer):
    """Delegates to ``opt`` and counts the updates it applies (``applied``, a local variable: not checkpointed).

    A loss-scale optimizer calls its inner optimizer's ``apply_gradients`` only for finite steps (TF's
    ``loss_scale_optimizer.py``: "no update is performed (nor is `global_step` incremented)"; Ascend's
    ``npu_loss_scale_optimizer.py`` ``true_apply_grads_fn`` inside ``control_flow_ops.cond(is_overall_finite, ...)``),
    so steps run minus ``applied`` is the count of steps skipped for overflow.
    """

    def __init__(self, opt: tf.train.Optimizer) -> None:
        super().__init__(use_locking=False, name=opt.get_name())
        self._opt = opt
        self.applied = tf.Variable(0, dtype=tf.int64, trainable=False, name="applied_updates",
                                   collections=[tf.GraphKeys.LOCAL_VARIABLES],
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def compute_gradients(self, *args, **kwargs):
        return self._opt.compute_gradients(*args, **kwargs)

    def apply_gradients(self, grads_and_vars, global_step=None, name=None):
        update = self._opt.apply_gradients(grads_and_vars, global_step, name)
        with tf.control_dependencies([update]):
            return self.applied.assign_add(1).op

    def get_slot(self, var, name):
        return self._opt.get_slot(var, name)

    def get_slot_names(self):
        return self._opt.get_slot_names()

    def variables(self):
        return self._opt.variables()


def wrap_optimizer(opt: tf.train.Optimizer, dev: DeviceConfig, distributed: bool = False) -> tf.train.Optimizer:
    """Dynamic loss scaling when ``device.mixed_precision`` is true; otherwise ``opt`` unchanged.

    npu: ``NPULossScaleOptimizer`` + ``ExponentialUpdateLossScaleManager`` (Ascend 910 saturates fp16 overflow
    instead of producing Inf/NaN, so only its float-status check sees it); ``distributed`` all-reduces that
    overflow flag so every rank skips the same steps. cpu/gpu: TF's ``MixedPrecisionLossScaleOptimizer`` with a
    ``DynamicLossScale`` (its one ``incr_ratio`` also divides on overflow; ``decr_*`` keys are NPU-only).
    Gradient all-reduce is the distribution engine's job, not this wrapper's. ``step_stats`` reads the loss
    scale and the applied-update count of the result.
    """
    if not dev.mixed_precision:
        return opt
    ls, inner = dev.loss_scale, CountApplied(opt)
    if dev.name == "npu":
        npu = npu_modules()
        manager = npu.loss_scale_manager.ExponentialUpdateLossScaleManager(
            init_loss_scale=ls.init, incr_every_n_steps=ls.incr_every_n_steps,
            decr_every_n_nan_or_inf=ls.decr_every_n_nan_or_inf, incr_ratio=ls.incr_ratio,
            decr_ratio=ls.decr_ratio)
        wrapped = npu.loss_scale_optimizer.NPULossScaleOptimizer(inner, manager, is_distributed=bool(distributed))
        scale = manager.get_loss_scale
    else:
        dynamic = tf.train.experimental.DynamicLossScale(initial_loss_scale=ls.init,
                                                         increment_period=ls.incr_every_n_steps,
                                                         multiplier=ls.incr_ratio)
        wrapped, scale = tf.train.experimental.MixedPrecisionLossScaleOptimizer(inner, dynamic), dynamic
    _STATS[id(wrapped)] = (scale, inner.applied)
    return wrapped


_STATS: dict = {}  # id(wrapped optimizer) -> (loss scale callable, applied-update counter)


def step_stats(opt: tf.train.Optimizer) -> tuple:
    """``(loss_scale, applied)`` tensors of an optimizer from ``wrap_optimizer``: the current loss scale (1.0
    without loss scaling) and the updates applied by this process (None without loss scaling: every step applies)."""
    scale, applied = _STATS.get(id(opt), (None, None))
    loss_scale = tf.cast(scale(), tf.float32) if scale is not None else tf.constant(1.0)
    return loss_scale, (applied.read_value() if applied is not None else None)


def local_index(addresses: List[str], rank: int) -> int:
    """How many of the workers before ``rank`` share its host: the GPU index for ``visible_devices=local``."""
    host = addresses[rank].rsplit(":", 1)[0]
    return sum(1 for addr in addresses[:rank] if addr.rsplit(":", 1)[0] == host)

"""Typed views of the composed config: the one path from Hydra's ``cfg`` to library code.

``cli.entry`` calls ``load(command, cfg)`` right after Hydra composed the config: every value is
converted to the type its dataclass field declares and range-checked, and a bad one fails with one
line naming its key (``bad setting train.batch_size: must be a positive integer, got abc``).
Library modules receive these frozen dataclasses, never a ``DictConfig``, and never repeat a YAML
default: the schemas have no defaults, the YAML files in ``conf/`` are the single source of them.

Where the schemas live: the commands' (``TrainConfig`` ... ``DoctorConfig``) here; the ``device`` and
``storage`` groups' (``DeviceConfig`` with ``LossScale``, ``Distribute`` and ``NpuOptions``; ``StorageConfig``)
in ``pwcflow.config.groups``; ``model`` becomes a ``ModelSpec`` and ``dataset`` a ``DatasetSpec``
(``data.datasets.spec_from_config``). The rule names a field declares (``ruled("positive")``) are in
``pwcflow.config.rules``. A schema may also have ``check_node(node, prefix)`` (rules on the raw node: an
unknown key under ``device.npu``, a credential under ``storage``) and ``check(prefix)`` (rules across its
fields, once they are typed). Only what depends on the machine or the command (a bf16 unit, npu_bridge,
TF_CONFIG / RANK_* ranks) is left to the runtime modules.
"""

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Type, TypeVar, Union

from omegaconf import DictConfig, ListConfig, OmegaConf

from pwcflow.config.groups import DeviceConfig, StorageConfig
from pwcflow.config.rules import RULES, SCALAR_RULES, check, ruled
from pwcflow.data import datasets
from pwcflow.data.datasets import DatasetSpec
from pwcflow.errors import UserError
from pwcflow.model.spec import LOSS_KINDS, ModelSpec

IMPLS = ("auto", "fused", "reference")
T = TypeVar("T")
Raw = Any  # a value of more than one type, handed on as composed (predict's viz and video)


# -- schemas ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loss:
    kind: str = ruled("one_of", *sorted(LOSS_KINDS))
    alphas: Tuple[float, ...] = ruled("five")
    gamma: float = ruled("non_negative")


@dataclass(frozen=True)
class Optimizer:
    name: str = ruled("one_of", "adam", "sgd")
    beta1: float = ruled("decay_rate")
    beta2: float = ruled("decay_rate")
    epsilon: float = ruled("positive")


@dataclass(frozen=True)
class LrSchedule:
    """``lr_schedule``: multisteps (boundaries, rates) or cyclic (base_lr, max_lr, step_size)."""

    name: str = ruled("one_of", "multisteps", "cyclic")
    boundaries: Optional[Tuple[int, ...]] = ruled("increasing")
    rates: Optional[Tuple[float, ...]] = ruled("all_positive")
    base_lr: Optional[float] = ruled("positive")
    max_lr: Optional[float] = ruled("positive")
    step_size: Optional[int] = ruled("positive")

    def check(self, prefix: str) -> None:
        """The keys the chosen schedule needs are set and agree with each other."""
        need = ("boundaries", "rates") if self.name == "multisteps" else ("base_lr", "max_lr", "step_size")
        for key in need:
            if getattr(self, key) is None:
                raise UserError("missing required setting: add %s%s=... to the command line" % (prefix, key))
        if self.name == "cyclic":
            check(self.max_lr >= self.base_lr, prefix + "max_lr",
                  "must be >= base_lr (%s), got %s" % (self.base_lr, self.max_lr))
        if self.name == "multisteps":
            check(len(self.rates) == len(self.boundaries) + 1, prefix + "rates",
                  "needs %d entries (one more than boundaries), got %d" % (len(self.boundaries) + 1, len(self.rates)))


@dataclass(frozen=True)
class TrainLoop:
    """``train``: loop lengths, intervals, batch and crop."""

    iterations: int = ruled("positive")
    batch_size: int = ruled("positive")
    crop: Tuple[int, ...] = ruled("crop")
    display_interval: int = ruled("positive")
    save_interval: int = ruled("positive")
    val_interval: int = ruled("positive")
    image_interval: int = ruled("positive")
    keep_checkpoints: int = ruled("at_least_1")
    val_pairs: int = ruled("non_negative")
    train_eval_pairs: int = ruled("non_negative")
    loader_threads: int = ruled("non_negative")
    scale_lr_with_workers: bool = field()


@dataclass(frozen=True)
class TrainConfig:
    """``conf/train.yaml``."""

    run_name: str
    resume: bool
    init_ckpt: Optional[str]
    seed: int
    model: ModelSpec
    loss: Loss
    optimizer: Optimizer
    lr_schedule: LrSchedule
    train: TrainLoop
    dataset: DatasetSpec
    device: DeviceConfig
    storage: StorageConfig


@dataclass(frozen=True)
class EvalConfig:
    """``conf/eval.yaml``."""

    ckpt: str
    split: Optional[str] = ruled("one_of", "train", "all", "val", "test")
    batch: int = ruled("at_least_1")
    workers: int = ruled("non_negative")
    flo: Optional[bool] = field()
    flo_dir: Optional[str] = field()
    pictures: bool = field()
    pictures_max: int = ruled("non_negative")
    sheet_pairs: int = ruled("non_negative")
    max_flow: Optional[float] = ruled("positive")
    max_side: Optional[int] = ruled("positive")
    progress: bool = field()
    out: Optional[str] = field()
    bundler: Optional[str] = field()
    model: ModelSpec = field()
    dataset: DatasetSpec = field()
    device: DeviceConfig = field()
    storage: StorageConfig = field()


@dataclass(frozen=True)
class Consistency:
    """``consistency``: forward-backward occlusion test constants (``pwcflow.inference.consistency``)."""

    alpha1: float = ruled("non_negative")
    alpha2: float = ruled("non_negative")


@dataclass(frozen=True)
class Live:
    """``live``: camera / stream input (``pwcflow.inference.live``)."""

    enabled: bool = field()
    window: Optional[bool] = field()
    save_frames: bool = field()
    max_frames: Optional[int] = ruled("positive")


@dataclass(frozen=True)
class PredictConfig:
    """``conf/predict.yaml``: one pair (img1, img2), a sequence (input) or an exported model (model_file).

    ``viz`` is a picture path for one pair and true/false for a sequence; ``video`` true/false or a path."""

    ckpt: Optional[str]
    model_file: Optional[str]
    img1: Optional[str]
    img2: Optional[str]
    out: Optional[str]
    viz: Raw
    max_flow: Optional[float] = ruled("positive")
    input: Optional[str] = field()
    format: str = ruled("one_of", "flo", "png16", "npy")
    batch: int = ruled("at_least_1")
    video: Raw = field()
    fps: Optional[float] = ruled("positive")
    bidirectional: bool = field()
    consistency: Consistency = field()
    max_side: Optional[int] = ruled("positive")
    live: Live = field()
    progress: bool = field()
    model: ModelSpec = field()
    device: DeviceConfig = field()
    storage: StorageConfig = field()


@dataclass(frozen=True)
class ExportConfig:
    """``conf/export.yaml`` (height/width multiples of the model's 64 are checked by ``export.input_shape``)."""

    ckpt: str
    format: str
    batch: Optional[int] = ruled("positive")
    height: Optional[int] = ruled("positive")
    width: Optional[int] = ruled("positive")
    out: Optional[str] = field()
    tolerance: Optional[float] = ruled("non_negative")
    opset: int = ruled("positive")
    fp16: bool = field()
    int8: bool = field()
    soc_version: str = field()
    model: ModelSpec = field()
    device: DeviceConfig = field()
    storage: StorageConfig = field()

    def check(self, prefix: str) -> None:
        """``soc_version`` names an ATC SoC (Ascend310, Ascend310P3, Ascend910, ...), checked before any export."""
        if not (self.soc_version.startswith("Ascend") and self.soc_version[6:].isalnum()):
            raise UserError("bad setting %ssoc_version: an ATC SoC name such as Ascend310, Ascend310P3 or "
                            "Ascend910, got %r" % (prefix, self.soc_version))


@dataclass(frozen=True)
class DoctorConfig:
    """``conf/doctor.yaml``: the parity check's reference, variants and tolerances on ``device``."""

    reference: Optional[str]
    variants: Tuple[str, ...] = field()
    tolerance: float = ruled("non_negative")
    tolerance_mixed: float = ruled("non_negative")
    device: DeviceConfig = field()


SCHEMAS: Dict[str, type] = {"train": TrainConfig, "eval": EvalConfig, "predict": PredictConfig,
                            "export": ExportConfig, "doctor": DoctorConfig}


# -- conversion ------------------------------------------------------------------------------------------
def load(command: str, cfg: DictConfig) -> Any:
    """The composed ``cfg`` of ``command`` as its typed schema (``cfg`` itself for commands without one)."""
    schema = SCHEMAS.get(command)
    return cfg if schema is None else convert(schema, cfg, "")


def convert(schema: Type[T], node: Any, prefix: str) -> T:
    """Build ``schema`` from a config node: each field converted, range-checked, its key named on error.

    Keys the schema does not name stay in the node (other commands' or newer keys) and are ignored here.
    """
    if hasattr(schema, "check_node"):  # rules on the node itself: its unknown keys, keys that must not exist
        schema.check_node(node, prefix)
    values = {}
    for f in dataclasses.fields(schema):
        key = prefix + f.name
        if f.type is Raw or f.type == "Raw":
            values[f.name] = node.get(f.name) if node is not None else None
            continue
        absent = node is None or f.name not in node or OmegaConf.is_missing(node, f.name)
        if absent and _is_optional(f.type) and not OmegaConf.is_missing(node, f.name):
            values[f.name] = None
            continue
        if absent or (node[f.name] is None and not _is_optional(f.type)):
            raise UserError("missing required setting: add %s=... to the command line" % key)
        try:
            value = _typed(f.type, node[f.name], key)
        except _BadType as exc:
            raise UserError("bad setting %s: %s, got %s" % (key, _want(f, exc.args[0]), node[f.name]))
        _apply_rule(f, value, key)
        values[f.name] = value
    out = schema(**values)
    if hasattr(out, "check"):
        out.check(prefix)
    return out


def _is_optional(kind: Any) -> bool:
    return getattr(kind, "__origin__", None) is Union and type(None) in kind.__args__


def _typed(kind: Any, value: Any, key: str) -> Any:
    """``value`` as ``kind`` (int, float, bool, str, Optional, Tuple, a schema, ModelSpec)."""
    if kind is ModelSpec:
        return model_spec(value)
    if kind is DatasetSpec:
        return datasets.spec_from_config(value)
    if dataclasses.is_dataclass(kind):
        return convert(kind, value, key + ".")
    if _is_optional(kind):
        inner = [a for a in kind.__args__ if a is not type(None)][0]
        return None if value is None else _typed(inner, value, key)
    if getattr(kind, "__origin__", None) in (dict, Dict):
        if not isinstance(value, (dict, DictConfig)):
            raise UserError("bad setting %s: must be a mapping {key: value}, got %s" % (key, value))
        plain = OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else dict(value)
        inner = kind.__args__[1]
        return {str(k): v if inner is Any else _typed(inner, v, "%s.%s" % (key, k)) for k, v in plain.items()}
    if getattr(kind, "__origin__", None) in (tuple, Tuple):
        if not isinstance(value, (list, tuple, ListConfig)):
            raise UserError("bad setting %s: must be a list, got %s" % (key, value))
        # elements: a wrong one names the list's key
        return tuple(_typed(kind.__args__[0], v, key) for v in value)
    return _scalar(kind, value, key)


class _BadType(ValueError):
    """A value that is not of its field's type (args[0]: the type)."""


NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _want(f: dataclasses.Field, kind: type) -> str:
    """What field ``f`` wants, in words (its rule's words for scalar rules)."""
    rule = f.metadata.get("rule")
    if rule in SCALAR_RULES:
        return RULES[rule][1].format(n="integer" if kind is int else "number")
    return "must be %s" % NAMES.get(kind, getattr(kind, "__name__", str(kind)))


def _scalar(kind: type, value: Any, key: str) -> Any:
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            raise ValueError
        if kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
            raise ValueError
        if kind is str and isinstance(value, (DictConfig, ListConfig, dict, list)):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise _BadType(kind)


def _apply_rule(f: dataclasses.Field, value: Any, key: str) -> None:
    rule = f.metadata.get("rule")
    if rule is None or value is None:
        return
    if rule == "one_of":
        check(value in f.metadata["choices"], key, "must be one of %s, got %s"
              % (", ".join(f.metadata["choices"]), value))
        return
    ok, why = RULES[rule]
    shown = list(value) if isinstance(value, tuple) else value
    check(ok(value), key, "%s, got %s" % (why.format(n="integer" if isinstance(value, int) else "number"), shown))


def model_spec(m: Any) -> ModelSpec:
    """``cfg.model`` -> ``ModelSpec`` (validated)."""
    check(m.pyr_lvls == 6 and m.flow_pred_lvl == 2, "model.pyr_lvls", "only 6 levels predicting at level 2 exist")
    check(m.costvol_impl in IMPLS, "model.costvol_impl", "must be one of %s" % (IMPLS,))
    check(m.warp_impl in IMPLS, "model.warp_impl", "must be one of %s" % (IMPLS,))
    number(m.search_range, "model.search_range", int, 1)
    return ModelSpec(name=str(m.name), dense=bool(m.dense), context_all_levels=bool(m.context_all_levels),
                     pyr_lvls=int(m.pyr_lvls), flow_pred_lvl=int(m.flow_pred_lvl),
                     search_range=int(m.search_range), costvol_impl=str(m.costvol_impl),
                     warp_impl=str(m.warp_impl))


def number(value, key: str, kind: type = int, low: Optional[float] = None, high: Optional[float] = None,
           low_open: bool = False, optional: bool = False):
    """``value`` of setting ``key`` as ``kind`` (int or float) in [low, high] (low excluded if ``low_open``).

    Anything else (``abc``, ``1.5`` for an integer, a list) is a one-line ``UserError`` naming the key;
    ``optional`` lets ``null`` through as None.
    """
    if value is None and optional:
        return None
    what = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool) or value is None or (kind is int and isinstance(value, float)
                                                        and not value.is_integer()):
            raise ValueError(value)
        num = kind(value)
    except (TypeError, ValueError):
        raise UserError("bad setting %s=%s: must be %s" % (key, value, what)) from None
    if kind is float and num != num:
        raise UserError("bad setting %s=%s: must be %s" % (key, value, what))
    if low is not None and (num < low or (low_open and num == low)):
        raise UserError("bad setting %s=%s: must be %s %s" % (key, value, ">" if low_open else ">=", low))
    if high is not None and num > high:
        raise UserError("bad setting %s=%s: must be <= %s" % (key, value, high))
    return num

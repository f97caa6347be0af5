"""``DatasetSpec``: the ``dataset`` config group, converted and validated (``spec_from_config``).

Re-exported by ``pwcflow.data.datasets``, whose readers turn a spec into samples.
"""

from dataclasses import dataclass, field, fields
from typing import Any, Dict, Optional, Tuple

from pwcflow.data.augment import AugmentSpec, augment_spec
from pwcflow.errors import UserError

KINDS = ("synthetic", "flyingchairs", "flyingthings3d", "chairsthingsmix", "sintel", "kitti2015")
SPLITS = ("train", "val", "all", "test")
PASSES = ("clean", "final")


@dataclass(frozen=True)
class DatasetSpec:
    """A validated ``dataset`` config group. Options a kind does not use are ignored by its reader."""

    name: str
    kind: str
    root: Optional[str] = None
    crop: Tuple[int, int] = (384, 448)  # training crop (tfoptflow's crop_preproc)
    eval_split: str = "val"  # the split eval/export read by default
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    passes: Tuple[str, ...] = ("clean",)  # sintel, flyingthings3d: clean and/or final
    scale: float = 1.0  # flyingthings3d: 0.5 = tfoptflow's FlyingThings3D_HalfRes, resized on the fly
    gt: str = "occ"  # kitti2015: flow_occ or flow_noc
    chairs_dir: str = "FlyingChairs_release"  # chairsthingsmix: sub-folders of root
    things_dir: str = "FlyingThings3D"
    split_file: Optional[str] = "FlyingChairs_train_val.txt"  # flyingchairs; null = random val_fraction
    val_fraction: float = 0.03  # random held-out share (things, kitti, chairs without split_file)
    split_seed: int = 1969
    val_scenes: Tuple[str, ...] = ()  # sintel: scenes held out for "val"
    train_size: int = 4000  # synthetic
    val_size: int = 100
    size: Tuple[int, int] = (192, 256)
    max_motion: float = 8.0
    seed: int = 0


def _bad(key: str, why: str) -> UserError:
    return UserError("bad setting dataset.%s: %s" % (key, why))


def spec_from_config(cfg: Any) -> DatasetSpec:
    """``cfg.dataset`` (DictConfig or mapping) -> ``DatasetSpec``; a bad or missing value names ``dataset.<key>``."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        for key in cfg:
            if OmegaConf.is_missing(cfg, key):
                raise UserError("dataset.%s is not set: pass dataset.%s=..." % (key, key))
        cfg = OmegaConf.to_container(cfg, resolve=True)
    raw: Dict[str, Any] = dict(cfg or {})
    known = {f.name for f in fields(DatasetSpec)}
    for key in raw:
        if key not in known:
            raise UserError("unknown setting dataset.%s (known: %s)" % (key, ", ".join(sorted(known))))
    for key in ("name", "kind"):
        if not raw.get(key):
            raise UserError("dataset.%s is not set" % key)
    raw["augment"] = augment_spec(raw.get("augment") or {})
    for key, value in list(raw.items()):
        if key in _TYPES and value is not None:
            raw[key] = _coerce(key, value, *_TYPES[key])
    spec = DatasetSpec(**raw)
    _validate(spec)
    return spec


# key -> (element type, is a list): values are converted, and a value of the wrong type names its key.
_TYPES = {"name": (str, False), "kind": (str, False), "root": (str, False), "eval_split": (str, False),
          "gt": (str, False), "chairs_dir": (str, False), "things_dir": (str, False), "split_file": (str, False),
          "scale": (float, False), "val_fraction": (float, False), "max_motion": (float, False),
          "split_seed": (int, False), "train_size": (int, False), "val_size": (int, False), "seed": (int, False),
          "crop": (int, True), "size": (int, True), "passes": (str, True), "val_scenes": (str, True)}


def _coerce(key: str, value: Any, kind: type, is_list: bool) -> Any:
    if is_list != isinstance(value, (list, tuple)):
        raise _bad(key, "must be %s, got %r" % ("a list" if is_list else "a single value", value))
    try:
        if is_list:
            return tuple(_one(kind, v) for v in value)
        return _one(kind, value)
    except (TypeError, ValueError):
        raise _bad(key, "must be of type %s, got %r" % (kind.__name__, value)) from None


def _one(kind: type, value: Any) -> Any:
    if isinstance(value, (bool, dict, list, tuple)):
        raise TypeError(value)
    if kind is int:
        number = float(value)
        if number != int(number):
            raise ValueError(value)
        return int(number)
    return kind(value)


def _validate(s: DatasetSpec) -> None:
    if s.kind not in KINDS:
        raise _bad("kind", "must be one of %s, got %r" % (KINDS, s.kind))
    if s.kind != "synthetic" and not s.root:
        raise UserError("dataset.root is not set: pass dataset.root=/path/to/the/%s/folder" % s.kind)
    if len(s.crop) != 2 or min(int(v) for v in s.crop) < 1:
        raise _bad("crop", "must be [height, width], got %r" % (s.crop,))
    if s.eval_split not in SPLITS:
        raise _bad("eval_split", "must be one of %s" % (SPLITS,))
    if not s.passes or any(p not in PASSES for p in s.passes) or len(set(s.passes)) != len(s.passes):
        raise _bad("passes", "must be a non-empty list of distinct %s, got %r" % (PASSES, s.passes))
    if not 0.0 < s.scale <= 1.0:
        raise _bad("scale", "must be in (0, 1], got %r" % (s.scale,))
    if s.gt not in ("occ", "noc"):
        raise _bad("gt", "must be occ or noc, got %r" % (s.gt,))
    if not 0.0 <= s.val_fraction < 1.0:
        raise _bad("val_fraction", "must be in [0, 1), got %r" % (s.val_fraction,))
    if s.train_size < 1 or s.val_size < 0:
        raise _bad("train_size", "train_size must be >= 1 and val_size >= 0")
    if len(s.size) != 2 or min(s.size) < 16:
        raise _bad("size", "must be [height, width] of at least 16 px, got %r" % (s.size,))
    if not 0.0 <= s.max_motion <= min(s.size) / 4.0:
        raise _bad("max_motion", "must be in [0, min(size) / 4], got %r" % (s.max_motion,))

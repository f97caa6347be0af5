"""Typed views of the composed config: the one path from Hydra's ``cfg`` to library code.

Library modules never read ``cfg``; entry points turn groups into these plain values.
"""

from typing import Optional

from omegaconf import DictConfig

from pwcflow.errors import UserError
from pwcflow.model.pwcnet import ModelSpec

IMPLS = ("fused", "reference")


def check(ok: bool, key: str, why: str) -> None:
    """Raise a one-line ``UserError`` about config key ``key`` unless ``ok``."""
    if not ok:
        raise UserError("bad setting %s: %s" % (key, why))


def model_spec(m: DictConfig) -> ModelSpec:
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

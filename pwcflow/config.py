"""Typed views of the composed config: the one path from Hydra's ``cfg`` to library code.

Library modules never read ``cfg``; entry points turn groups into these plain values.
"""

from omegaconf import DictConfig

from pwcflow.errors import UserError
from pwcflow.model.pwcnet import ModelSpec

IMPLS = ("auto", "fused", "reference")


def check(ok: bool, key: str, why: str) -> None:
    """Raise a one-line ``UserError`` about config key ``key`` unless ``ok``."""
    if not ok:
        raise UserError("bad setting %s: %s" % (key, why))


def model_spec(m: DictConfig) -> ModelSpec:
    """``cfg.model`` -> ``ModelSpec`` (validated)."""
    check(m.pyr_lvls == 6 and m.flow_pred_lvl == 2, "model.pyr_lvls", "only 6 levels predicting at level 2 exist")
    check(m.costvol_impl in IMPLS, "model.costvol_impl", "must be one of %s" % (IMPLS,))
    check(m.warp_impl in IMPLS, "model.warp_impl", "must be one of %s" % (IMPLS,))
    check(int(m.search_range) > 0, "model.search_range", "must be positive")
    return ModelSpec(name=str(m.name), dense=bool(m.dense), context_all_levels=bool(m.context_all_levels),
                     pyr_lvls=int(m.pyr_lvls), flow_pred_lvl=int(m.flow_pred_lvl),
                     search_range=int(m.search_range), costvol_impl=str(m.costvol_impl),
                     warp_impl=str(m.warp_impl))

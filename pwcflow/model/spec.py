"""What a PWC-Net variant and its loss are, without TensorFlow: the typed config and TF-free tools import this."""

from dataclasses import dataclass

LOSS_KINDS = {"multiscale": (2, 0.0, 1.0), "robust": (1, 0.01, 0.4)}  # norm order, epsilon, q


@dataclass(frozen=True)
class ModelSpec:
    """What defines a PWC-Net variant (the ``model`` config group maps onto this)."""

    name: str = "lg-6-2"
    dense: bool = True  # tfoptflow use_dense_cx
    context_all_levels: bool = True  # tfoptflow use_res_cx
    pyr_lvls: int = 6
    flow_pred_lvl: int = 2
    search_range: int = 4
    costvol_impl: str = "auto"  # auto | fused | reference | patches (tuning.resolve: auto picks per backend)
    warp_impl: str = "auto"  # auto | fused | reference

    @property
    def multiple(self) -> int:
        """Input height/width must be a multiple of this (64 for 6 levels)."""
        return 2 ** self.pyr_lvls

"""tfoptflow parity on a plain clone: the compact reference in ``pwcflow/reference`` (no ``../shared`` needed).

The weights are rebuilt from the numpy recipe (RECIPE.md) and checked against its sha256; the flows, both
losses and the loss after one Adam / SGD step must equal tfoptflow's within RECIPE.md's tolerances.
"""

import numpy as np
import pytest

from pwcflow.reference import REF_DIR, parity, recipe

# RECIPE.md's debug aids: (index, name, first 3 values) per variant
FIRST_VALUES = {
    "sm": [(0, "pwcnet/featpyr/conv1a/kernel", [-0.0299540628, -0.178627461, 0.0586080626]),
           (1, "pwcnet/featpyr/conv1a/bias", [-0.0131547339, -0.00483804569, 0.00342246331]),
           (50, "pwcnet/upsample/up_feat6/kernel", [0.0793961808, 0.0429675542, -0.0888694525])],
    "lg": [(0, "pwcnet/featpyr/conv1a/kernel", [-0.0299540628, -0.178627461, 0.0586080626]),
           (64, "pwcnet/upsample/up_feat6/kernel", [0.0017650529, 0.00128959341, -0.0233199652])],
}
COUNTS = {"sm": (126, 4705064), "lg": (182, 14079050)}


@pytest.mark.parametrize("variant", ["sm", "lg"])
def test_recipe_reproduces_the_reference_sha256(variant):
    assert recipe.file_sha256(recipe.spec_path(variant)) == recipe.SPEC_SHA256[variant]
    values = recipe.weights(variant)
    assert (len(values), sum(v.size for v in values.values())) == COUNTS[variant]
    assert all(v.dtype == np.float32 for v in values.values())
    names = list(values)
    for index, name, first in FIRST_VALUES[variant]:
        assert names[index] == name
        np.testing.assert_allclose(values[name].ravel()[:3], first, rtol=1e-7)
    assert recipe.sha256(values) == recipe.WEIGHTS_SHA256[variant]
    assert parity.expected_losses(variant)["weights_sha256"] == recipe.WEIGHTS_SHA256[variant]


def test_shipped_reference_files():
    assert recipe.file_sha256(REF_DIR + "/pair_b_img1.png") == (
        "e6a017831ea95671cce8ef563662bd0ebfa06a90754a62b18bc00a87c60f8271")
    assert recipe.file_sha256(REF_DIR + "/pair_b_img2.png") == (
        "a3a744848645cbc3794d4d5382ec942e6ee9882ab71b390378b4f22ca9b4c7f3")
    assert parity.load_pair().shape == (1, 2, 120, 200, 3)


@pytest.fixture(scope="module", params=["sm", "lg"])
def mini_ckpt(request, tmp_path_factory):
    """The recipe weights of one variant saved as a TF checkpoint (generated here, not stored)."""
    return request.param, parity.make_checkpoint(request.param, str(tmp_path_factory.mktemp(request.param)))


def test_checkpoint_holds_the_recipe(mini_ckpt):
    from pwcflow.tf1 import tf

    variant, prefix = mini_ckpt
    reader = tf.train.NewCheckpointReader(prefix)
    values = recipe.weights(variant)
    assert recipe.sha256({k: reader.get_tensor(k) for k in values}) == recipe.WEIGHTS_SHA256[variant]


def test_flows_match_tfoptflow(mini_ckpt):
    """Final flow and every pyramid level within 1e-4 px of tfoptflow's."""
    variant, prefix = mini_ckpt
    got, want = parity.forward(variant, prefix), parity.expected(variant)
    assert got["final"].shape == (120, 200, 2) and np.abs(want["final"]).max() > 1.0
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=parity.FLOW_ATOL, rtol=0, err_msg=key)
    assert max(parity.flow_differences(got, want).values()) <= parity.FLOW_ATOL


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["multiscale", "robust"])
def test_losses_and_one_step_match_tfoptflow(mini_ckpt, kind):
    """Loss, weight decay and total within 1e-5 (relative), the total after one step within 1e-4."""
    variant, prefix = mini_ckpt
    got, want = parity.training_losses(variant, prefix, kind), parity.loss_expectations(variant, kind)
    for key in ("loss_unreg", "weight_decay", "total"):
        np.testing.assert_allclose(got[key], want[key], rtol=parity.LOSS_RTOL, err_msg=key)
    np.testing.assert_allclose(got["total_after"], want["total_after"], rtol=parity.STEP_RTOL)
    assert got["total_after"] < got["total"]  # the step really changed the weights

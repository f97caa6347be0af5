"""tfoptflow parity on a plain clone: the compact reference in ``pwcflow/reference`` (no ``../shared`` needed).

The weights are rebuilt from the numpy recipe (RECIPE.md) and checked against its sha256; the flows, both
losses and the loss after one Adam / SGD step must equal tfoptflow's within RECIPE.md's tolerances.
"""

import numpy as np
import pytest

from pwcflow.reference import REF_DIR, parity, recipe


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

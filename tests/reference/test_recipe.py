"""The reference weights' recipe (``reference/recipe.py``, RECIPE.md): it reproduces the shipped checkpoints."""

import numpy as np
import pytest

from pwcflow.reference import parity, recipe

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

"""Running exported models without TensorFlow (``deploy/exported.py``)."""

import numpy as np
import pytest

from pwcflow.deploy import exported
from pwcflow.errors import UserError


def test_fit_pads_and_refuses():
    x = np.ones((1, 2, 50, 60, 3), np.float32)
    y = exported.fit(x, [1, 2, 64, 128, 3])
    assert y.shape == (1, 2, 64, 128, 3) and y[:, :, :50, :60].all() and not y[:, :, 50:].any()
    assert exported.fit(x, [None, 2, None, None, 3]).shape == (1, 2, 64, 64, 3)
    assert exported.fit(x, [2, 2, 64, 64, 3]).shape[0] == 2
    with pytest.raises(UserError, match="width 60 is larger.*width=64"):
        exported.fit(x, [1, 2, 64, 32, 3])

"""The network's TF-free input rule (``model/spec.py``): one ``to_input`` and one padding rule for the TensorFlow
predictor and the exported-model runtimes."""

import numpy as np
import pytest

from pwcflow.deploy import exported
from pwcflow.inference import predictor
from pwcflow.model import spec
from pwcflow.model.spec import ModelSpec, pad_to, pad_to_multiple, to_input


def test_one_input_rule_for_every_predictor():
    assert predictor.to_input is spec.to_input and exported.to_input is spec.to_input
    assert predictor.pad_to_multiple is spec.pad_to_multiple


def test_to_input_scales_to_unit_range_without_mean():
    a = np.full((3, 5, 3), 255, np.uint8)
    b = np.zeros((3, 5, 3), np.uint8)
    x = to_input(a, b)
    assert x.dtype == np.float32 and x.shape == (2, 3, 5, 3) and x[0].min() == 1.0 and x[1].max() == 0.0


def test_padding_is_zeros_at_the_bottom_and_right_only():
    x = np.ones((1, 2, 70, 130, 3), np.float32)
    y = pad_to_multiple(x, ModelSpec().multiple, (2, 3))
    assert y.shape == (1, 2, 128, 192, 3)
    assert np.array_equal(y[:, :, :70, :130], x) and not y[:, :, 70:].any() and not y[:, :, :, 130:].any()
    already = np.ones((1, 2, 64, 128, 3), np.float32)
    assert pad_to_multiple(already, 64, (2, 3)) is already  # nothing to pad: no copy


def test_exported_fit_pads_dynamic_dims_by_the_same_rule():
    x = np.random.RandomState(0).rand(2, 2, 70, 130, 3).astype(np.float32)
    assert np.array_equal(exported.fit(x, [None, 2, None, None, 3]), pad_to_multiple(x, 64, (2, 3)))
    fixed = exported.fit(x, [3, 2, 128, 256, 3])
    assert np.array_equal(fixed, pad_to(x, {0: 3, 2: 128, 3: 256}))


def test_pad_to_refuses_nothing_it_cannot_do():
    with pytest.raises(ValueError):
        pad_to(np.ones((4, 4)), {0: 2})  # smaller than the input: numpy refuses a negative pad

"""Learning-rate schedules (``training/lr.py``): tfoptflow's multisteps and triangular2 cyclic, by hand."""

import numpy as np
import pytest

from pwcflow.errors import UserError
from pwcflow.tf1 import tf
from pwcflow.training import lr


def _values(make, steps):
    with tf.Graph().as_default():
        step = tf.placeholder(tf.int64, [])
        rate = make(step)
        with tf.Session() as sess:
            return [float(sess.run(rate, {step: s})) for s in steps]


def test_multisteps_switches_after_each_boundary():
    got = _values(lambda s: lr.multisteps(s, [10, 20], [1e-4, 5e-5, 2.5e-5]), [0, 10, 11, 20, 21, 10 ** 6])
    assert got == pytest.approx([1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5, 2.5e-5])


def test_cyclic_is_triangular_and_halves_each_cycle():
    got = _values(lambda s: lr.cyclic(s, 1e-5, 5e-4, 100), [0, 50, 100, 200, 300, 400])
    peak = 5e-4 - 1e-5
    assert got == pytest.approx([1e-5, 1e-5 + peak / 2, 5e-4, 1e-5, 1e-5 + peak / 2, 1e-5], rel=1e-5)
    assert np.argmax(_values(lambda s: lr.cyclic(s, 1e-5, 5e-4, 100), range(0, 201, 10))) == 10


@pytest.mark.parametrize("boundaries, rates, words", [
    ([10, 20], [1e-4, 5e-5], "needs 3 entries"),
    ([20, 10], [1e-4, 5e-5, 2.5e-5], "strictly increasing"),
])
def test_bad_multisteps_are_one_line(boundaries, rates, words):
    with tf.Graph().as_default(), pytest.raises(UserError, match=words):
        lr.multisteps(tf.constant(0, tf.int64), boundaries, rates)

"""Loss parity with tfoptflow: both losses, weight decay, gradients, the loss after one step."""

import json

import numpy as np
import pytest
from conftest import REF_SOURCES, reference_root

from pwcflow.data import flowio
from pwcflow.files import checkpoint
from pwcflow.inference.predictor import pad_to_multiple, to_input
from pwcflow.model import losses
from pwcflow.model.pwcnet import ModelSpec, pwcnet
from pwcflow.tf1 import tf

SPECS = {"lg": ModelSpec("lg-6-2", True, True), "sm": ModelSpec("sm-6-2", False, False)}


def _graph(ref_dir, variant, kind):
    d = ref_dir / variant
    x = to_input(flowio.read_image(str(d / "pair_b_img1.png")), flowio.read_image(str(d / "pair_b_img2.png")))
    x = pad_to_multiple(x[None], 64, (2, 3))
    gt = np.load(str(d / "train_pair_b_gt_padded.npy"))[None]
    xt, yt = tf.constant(x), tf.constant(gt)
    flow, pyr = pwcnet(xt, SPECS[variant])
    order, eps, q = losses.KINDS[kind]
    unreg, levels = losses.pyramid_loss(yt, pyr, order, eps, q)
    reg = losses.weight_decay(tf.trainable_variables(), 0.0004)
    return yt, pyr, unreg, levels, reg, losses.epe(yt, flow)


@pytest.mark.parametrize("source", REF_SOURCES)
@pytest.mark.parametrize("variant", ["lg", "sm"])
def test_scaled_ground_truth_matches(variant, source, ref_dir):
    ref_dir = reference_root(source, ref_dir)
    with tf.Graph().as_default(), tf.Session() as sess:
        yt, pyr, *_ = _graph(ref_dir, variant, "multiscale")
        got = sess.run([losses.scaled_gt(yt, f) for f in pyr])
    for lvl, g in zip([6, 5, 4, 3, 2], got):
        np.testing.assert_allclose(g[0], np.load(str(ref_dir / variant / ("train_pair_b_gt_scaled_flow%d.npy" % lvl))),
                                   atol=1e-6)


@pytest.mark.parametrize("source", REF_SOURCES)
@pytest.mark.parametrize("variant", ["lg", "sm"])
@pytest.mark.parametrize("kind", ["multiscale", "robust"])
def test_loss_gradients_and_one_step(variant, kind, source, ref_dir):
    """Losses, per-level sums, EPE and the loss after one step (both references); per-variable gradients and
    updates (``../shared`` only: the repository's reference has tfoptflow's losses, not its gradients)."""
    ref_dir = reference_root(source, ref_dir)
    meta = json.load(open(str(ref_dir / variant / "meta.json")))["training"]["multiscale"]
    before, after = meta["before_step"], meta["after_one_step"]
    npz = {}
    if source == "shared":
        npz = np.load(str(ref_dir / variant / ("train_pair_b_%s_small_vars.npz"
                                               % ("multiscale_adam" if kind == "multiscale" else "robust_proxgd"))))
    with tf.Graph().as_default(), tf.Session() as sess:
        _, _, unreg, levels, reg, epe = _graph(ref_dir, variant, kind)
        total = unreg + reg
        variables = checkpoint.model_variables()
        grads = tf.gradients(total, variables)
        if kind == "multiscale":
            opt = tf.train.AdamOptimizer(1e-4, beta1=0.9, beta2=0.999, epsilon=1e-8)
        else:
            opt = tf.train.GradientDescentOptimizer(1e-5)
        step = opt.minimize(total, var_list=variables)
        sess.run(tf.global_variables_initializer())
        checkpoint.restore(sess, str(ref_dir / variant / "pwcnet.ckpt"), variables, SPECS[variant].name)
        u, r, t, e, lv, g = sess.run([unreg, reg, total, epe, levels, grads])
        sess.run(step)
        t_after, v_after = sess.run([total, variables])
    if kind == "multiscale":
        np.testing.assert_allclose([u, r, t], [before["loss_unreg"], before["loss_reg"], before["loss"]], rtol=1e-5)
        np.testing.assert_allclose(lv, [before["levels"]["flow%d" % i] for i in (6, 5, 4, 3, 2)], rtol=1e-5)
        np.testing.assert_allclose(e, before["epe_metric"], rtol=1e-5)
        np.testing.assert_allclose(t_after, after["loss"], rtol=1e-4)
    else:
        np.testing.assert_allclose([u, u + r], [before["robust_loss_unreg"], before["robust_loss_total"]], rtol=1e-5)
    if source == "repo" and kind == "robust":  # tfoptflow's total after its ProximalGradientDescent (= SGD) step
        np.testing.assert_allclose(t_after, after["robust_loss"], rtol=1e-4)
    if source == "repo":
        return
    names = [v.op.name for v in variables]
    checked = 0
    for key in npz.files:
        kind_key, name = key.split(":", 1)
        i = names.index(name)
        if kind_key == "grad":
            ref = npz[key]
            np.testing.assert_allclose(g[i], ref, atol=0.01 * np.abs(ref).max() + 1e-12, err_msg=name)
        elif kind == "robust":  # plain SGD: every element moves by exactly lr * grad
            np.testing.assert_allclose(v_after[i], npz[key], atol=1e-7, err_msg=name)
        checked += 1
    assert checked > 20


def test_l2_loss_gradient_is_finite_where_the_prediction_is_exact():
    """tf.norm's gradient at a zero difference is NaN; a bf16 demo run reached it at step 401 and diverged."""
    with tf.Graph().as_default():
        gt = tf.constant(np.random.RandomState(0).randn(1, 64, 64, 2).astype(np.float32))
        flows = [tf.Variable(tf.zeros([1, 64 // 2 ** lvl, 64 // 2 ** lvl, 2])) for lvl in (6, 5, 4, 3, 2)]
        exact = [f.assign(losses.scaled_gt(gt, f)) for f in flows]
        total, _ = losses.pyramid_loss(gt, flows, *losses.KINDS["multiscale"])
        grads = tf.gradients(total, flows)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(exact)
            value, got = sess.run([total, grads])
        assert value < 1e-10 and all(np.isfinite(g).all() and not g.any() for g in got)

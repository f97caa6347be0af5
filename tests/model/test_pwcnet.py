"""Foundation: tfoptflow variable layout, numerical parity, checkpoint round trip, any input size."""

import numpy as np
import pytest

from pwcflow.data import flowio
from pwcflow.files import checkpoint
from pwcflow.inference.predictor import FlowPredictor, to_input
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.tf1 import tf

SPECS = {
    "lg": ModelSpec(name="lg-6-2", dense=True, context_all_levels=True),
    "sm": ModelSpec(name="sm-6-2", dense=False, context_all_levels=False),
}


def _spec_file(spec_dir, variant):
    rows = []
    for line in open(str(spec_dir / ("tfoptflow-%s-6-2-variables.txt" % variant))):
        if line.startswith("#") or not line.strip():
            continue
        name, shape = line.split()
        rows.append((name, [int(d) for d in shape.split("x")]))
    return rows


@pytest.mark.parametrize("variant", ["lg", "sm"])
def test_variables_match_tfoptflow_spec(variant, spec_dir):
    """Names, shapes and creation order equal tfoptflow's lists."""
    with tf.Graph().as_default():
        from pwcflow.model.pwcnet import pwcnet

        pwcnet(tf.placeholder(tf.float32, [1, 2, 64, 64, 3]), SPECS[variant])
        got = [(v.op.name, v.get_shape().as_list()) for v in tf.global_variables()]
    assert got == _spec_file(spec_dir, variant)


@pytest.fixture(scope="module", params=["lg", "sm"])
def ref_predictor(request, ref_dir):
    p = FlowPredictor(SPECS[request.param], str(ref_dir / request.param / "pwcnet.ckpt"))
    yield request.param, p
    p.close()


@pytest.mark.parametrize("pair", ["a", "b"])
def test_parity_with_tfoptflow(ref_predictor, ref_dir, pair):
    """Final flow and every pyramid level equal tfoptflow's within 1e-4 px."""
    variant, predictor = ref_predictor
    d = ref_dir / variant
    img1 = flowio.read_image(str(d / ("pair_%s_img1.png" % pair)))
    img2 = flowio.read_image(str(d / ("pair_%s_img2.png" % pair)))
    flow, pyramid = predictor.predict_batch(to_input(img1, img2)[None], with_pyramid=True)
    np.testing.assert_allclose(flow[0], np.load(str(d / ("pair_%s_flow.npy" % pair))), atol=1e-4, rtol=0)
    for lvl, level_flow in zip([6, 5, 4, 3, 2], pyramid):
        ref = np.load(str(d / ("pair_%s_pyr_flow%d.npy" % (pair, lvl))))
        np.testing.assert_allclose(level_flow[0], ref, atol=1e-4, rtol=0, err_msg="level %d" % lvl)


def test_reference_formulation_equals_fused(ref_dir):
    """tfoptflow's 81-slice cost volume and 4-gather warp give the fused ops' numbers."""
    d = ref_dir / "sm"
    x = to_input(flowio.read_image(str(d / "pair_b_img1.png")), flowio.read_image(str(d / "pair_b_img2.png")))[None]
    ref_spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False,
                         costvol_impl="reference", warp_impl="reference")
    flows = []
    for spec in (SPECS["sm"], ref_spec):
        p = FlowPredictor(spec, str(d / "pwcnet.ckpt"))
        flows.append(p.predict_batch(x))
        p.close()
    np.testing.assert_allclose(flows[0], flows[1], atol=1e-5, rtol=0)


def test_save_restore_is_bit_identical(tmp_path):
    """Random weights saved by name and restored into a fresh graph give identical outputs."""
    x = np.random.RandomState(0).rand(1, 2, 64, 128, 3).astype(np.float32)
    first = FlowPredictor(SPECS["sm"], None, seed=7)
    prefix = checkpoint.save_atomic(first.sess, first.saver, str(tmp_path / "ckpt"), step=3)
    out1 = first.predict_batch(x)
    first.close()
    assert checkpoint.resolve(str(tmp_path / "ckpt")) == prefix
    second = FlowPredictor(SPECS["sm"], prefix)
    out2 = second.predict_batch(x)
    second.close()
    assert np.abs(out1).max() > 0
    assert np.array_equal(out1, out2)


@pytest.mark.parametrize("hw", [(120, 200), (436, 1024)])
def test_any_input_size(hw):
    """Non-multiple-of-64 inputs are padded and cropped back: right shape, finite flow."""
    predictor = FlowPredictor(SPECS["sm"], None, seed=1)
    rng = np.random.RandomState(1)
    img1 = rng.randint(0, 255, hw + (3,), dtype=np.uint8)
    flow = predictor.predict(img1, np.roll(img1, 2, axis=1))
    predictor.close()
    assert flow.shape == hw + (2,)
    assert np.isfinite(flow).all()


def test_training_checkpoint_with_optimizer_slots_restores(tmp_path, ref_dir):
    """A checkpoint that also holds Adam slots and a step counter restores the model by name."""
    spec = SPECS["sm"]
    x = np.random.RandomState(2).rand(1, 2, 64, 64, 3).astype(np.float32)
    ref = FlowPredictor(spec, str(ref_dir / "sm" / "pwcnet.ckpt"))
    want = ref.predict_batch(x)
    ref.close()
    with tf.Graph().as_default():
        from pwcflow.model.pwcnet import pwcnet

        flow, _ = pwcnet(tf.placeholder(tf.float32, [1, 2, 64, 64, 3]), spec)
        step = tf.train.get_or_create_global_step()
        train = tf.train.AdamOptimizer(1e-4).minimize(tf.reduce_mean(flow), global_step=step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            checkpoint.restore(sess, str(ref_dir / "sm" / "pwcnet.ckpt"), checkpoint.model_variables(), spec.name)
            assert train is not None
            prefix = tf.train.Saver().save(sess, str(tmp_path / "pwcnet.ckpt"), global_step=595000)
    stored = checkpoint.stored_shapes(prefix)
    assert any("/Adam" in k for k in stored) and "global_step" in stored
    again = FlowPredictor(spec, str(tmp_path))
    np.testing.assert_array_equal(again.predict_batch(x), want)
    again.close()

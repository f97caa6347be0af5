"""Foundation: tfoptflow variable layout, numerical parity, checkpoint round trip, any input size."""

import numpy as np
import pytest
from conftest import REF_SOURCES, reference_root

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


# pair b against the repository's reference; pair a (436x1024) and pair b again where ../shared is present
CASES = [(s, v, p) for s in REF_SOURCES for v in ("lg", "sm") for p in ("b" if s == "repo" else "ab")]


@pytest.fixture(scope="module")
def ref_predictors(ref_dir):
    """One predictor per (reference, variant), made on first use."""
    made = {}

    def get(source, variant):
        if (source, variant) not in made:
            root = reference_root(source, ref_dir) / variant
            made[source, variant] = root, FlowPredictor(SPECS[variant], str(root / "pwcnet.ckpt"))
        return made[source, variant]

    yield get
    for _, p in made.values():
        p.close()


@pytest.mark.parametrize("source,variant,pair", CASES)
def test_parity_with_tfoptflow(ref_predictors, source, variant, pair):
    """Final flow and every pyramid level equal tfoptflow's within 1e-4 px."""
    d, predictor = ref_predictors(source, variant)
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

        xt = tf.placeholder(tf.float32, [1, 2, 64, 64, 3])
        flow, _ = pwcnet(xt, spec)
        step = tf.train.get_or_create_global_step()
        train = tf.train.AdamOptimizer(1e-4).minimize(tf.reduce_mean(flow), global_step=step)
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            sess.run(train, {xt: x})  # real Adam slots and a step counter, then the reference weights back
            assert sess.run(step) == 1
            checkpoint.restore(sess, str(ref_dir / "sm" / "pwcnet.ckpt"), checkpoint.model_variables(), spec.name)
            prefix = tf.train.Saver().save(sess, str(tmp_path / "pwcnet.ckpt"), global_step=595000)
    stored = checkpoint.stored_shapes(prefix)
    assert any("/Adam" in k for k in stored) and "global_step" in stored
    again = FlowPredictor(spec, str(tmp_path))
    np.testing.assert_array_equal(again.predict_batch(x), want)
    again.close()


def _tfoptflow_training_checkpoint(variant: str, folder, step: int = 595000) -> str:
    """A checkpoint laid out as tfoptflow's trainer saves one, built without pwcflow's model code.

    tfoptflow (model_base.py, model_pwcnet.py, ckpt_mgr.py at bdc7a72): the variables of its variable list in
    creation order, ``tf.train.get_or_create_global_step()``, ``AdamOptimizer(lr, epsilon=1e-8).minimize`` (slots
    ``<var>/Adam``, ``<var>/Adam_1``, ``beta1_power``, ``beta2_power``), saved by ``BestCheckpointSaver``:
    ``tf.train.Saver(max_to_keep=None, save_relative_paths=True)`` as ``pwcnet.ckpt-<step>`` with its meta graph,
    plus a ``best_checkpoints`` JSON. The weights are RECIPE.md's; the slots hold noise that must not leak in.
    """
    import json

    from pwcflow.reference import recipe

    values = recipe.weights(variant)
    rng = np.random.RandomState(3)
    with tf.Graph().as_default(), tf.Session() as sess:
        tf_vars = [tf.get_variable(n, v.shape, tf.float32, tf.zeros_initializer()) for n, v in values.items()]
        g_step = tf.train.get_or_create_global_step()
        loss = tf.add_n([tf.reduce_sum(tf.square(v)) for v in tf_vars])
        optim = tf.train.AdamOptimizer(1e-4, epsilon=1e-8)
        optim.minimize(loss, global_step=g_step)
        sess.run(tf.global_variables_initializer())
        for var, value in zip(tf_vars, values.values()):
            var.load(value, sess)
        for slot in optim.variables():
            slot.load(rng.standard_normal(slot.get_shape().as_list()).astype(np.float32), sess)
        g_step.load(step, sess)
        saver = tf.train.Saver(max_to_keep=None, save_relative_paths=True)
        prefix = saver.save(sess, str(folder / "pwcnet.ckpt"), g_step)
    (folder / "best_checkpoints").write_text(json.dumps({"pwcnet.ckpt-%d" % step: 1.0}, indent=3))
    return prefix


@pytest.mark.parametrize("variant,by", [("sm", "prefix"), pytest.param("lg", "folder", marks=pytest.mark.slow)])
def test_tfoptflow_training_checkpoint_loads_unchanged(variant, by, tmp_path):
    """``pwcnet.ckpt-595000`` as tfoptflow saves it, given to predict as is: tfoptflow's flow for pair b."""
    from conftest import run_module

    from pwcflow.reference import REF_DIR, parity

    folder = tmp_path / ("pwcnet-%s-6-2-multisteps-chairsthingsmix" % variant)
    folder.mkdir()
    prefix = _tfoptflow_training_checkpoint(variant, folder)
    assert prefix == str(folder / "pwcnet.ckpt-595000")
    stored = checkpoint.stored_shapes(prefix)
    names = [n for n, _ in parity.recipe.variables(variant)]
    assert len(stored) == 3 * len(names) + 3  # weights, two Adam slots each, step and the two power accumulators
    assert {"global_step", "beta1_power", "beta2_power"} <= set(stored)
    assert all(n in stored and n + "/Adam" in stored and n + "/Adam_1" in stored for n in names)
    assert (folder / "pwcnet.ckpt-595000.meta").exists()
    out = tmp_path / "flow.flo"
    proc = run_module("pwcflow.predict", "ckpt=%s" % (prefix if by == "prefix" else folder),
                      "model=%s-6-2" % variant, "img1=%s/pair_b_img1.png" % REF_DIR,
                      "img2=%s/pair_b_img2.png" % REF_DIR, "out=%s" % out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = parity.expected(variant)["final"]
    np.testing.assert_allclose(flowio.read_flo(str(out)), want, atol=parity.FLOW_ATOL, rtol=0)

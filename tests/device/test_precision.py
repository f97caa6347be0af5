"""``device.precision``: fp32 / bf16, refused with one line where the CPU or TensorFlow cannot run bf16."""

import numpy as np
import pytest

from pwcflow.config.compose import compose_group
from pwcflow.device import backend, precision
from pwcflow.errors import UserError
from pwcflow.model import tuning
from pwcflow.tf1 import IS_TF1

HAS_BF16 = precision.bf16_unit() is not None and not IS_TF1 and tuning.onednn_enabled()


def _dev(name="cpu", **changes):
    """conf/device/<name>.yaml through the config loader, with ``changes``."""
    return compose_group("device", name, changes)


def test_flags_are_read(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n")
    assert precision.bf16_unit(precision.cpu_flags(str(info))) == "avx512_bf16"
    assert precision.bf16_unit({"avx512_bf16", "amx_bf16"}) == "amx_bf16"
    assert precision.bf16_unit({"avx2"}) is None
    assert precision.cpu_flags(str(tmp_path / "missing")) == set()


def test_fp32_is_the_default_and_changes_nothing():
    cfg = backend.base_config(_dev(), training=False)
    rewrite = cfg.graph_options.rewrite_options
    if not IS_TF1:
        assert rewrite.auto_mixed_precision_onednn_bfloat16 == type(rewrite).DEFAULT
    assert precision.check(_dev()) == "fp32"


@pytest.mark.parametrize("dev,flags,match", [
    (dict(precision="fp16"), {"avx512_bf16"}, "one of fp32, bf16"),  # at compose time
    (dict(precision="bf16"), {"avx2", "avx512f"}, "AVX512-BF16 or AMX"),  # on this machine
    (dict(precision="bf16", name="gpu"), {"avx512_bf16"}, "device=cpu"),  # at compose time
])
def test_refused_with_one_line(dev, flags, match):
    with pytest.raises(UserError, match=match) as exc:
        precision.check(_dev(**dev), flags=flags)
    assert "device.precision" in str(exc.value) and "\n" not in str(exc.value)


def test_bf16_needs_tf2_with_onednn(monkeypatch):
    monkeypatch.setattr(tuning, "onednn_enabled", lambda: False)
    with pytest.raises(UserError, match="oneDNN"):
        precision.check(_dev(precision="bf16"), flags={"avx512_bf16"})


@pytest.mark.skipif(not HAS_BF16, reason="needs a CPU with bfloat16 units and TF 2.x with oneDNN")
def test_bf16_session_runs_the_model_close_to_fp32(tmp_path):
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.model.pwcnet import ModelSpec

    cfg = backend.base_config(_dev(precision="bf16"), training=False)
    rewrite = cfg.graph_options.rewrite_options
    assert rewrite.auto_mixed_precision_onednn_bfloat16 == type(rewrite).ON
    spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
    x = np.random.RandomState(0).rand(1, 2, 64, 128, 3).astype(np.float32)
    p32 = FlowPredictor(spec, None, backend.base_config(_dev(), training=False), seed=0)
    flow32 = p32.predict_batch(x)
    p16 = FlowPredictor(spec, None, cfg, seed=0)
    p16.saver.restore(p16.sess, p32.saver.save(p32.sess, str(tmp_path / "ckpt"), write_meta_graph=False))
    flow16 = p16.predict_batch(x)
    p32.close()
    p16.close()
    diff = np.abs(flow16 - flow32)
    assert 0 < diff.max() < 0.05 * max(1.0, float(np.abs(flow32).max()))  # bf16 ran (not bit-equal), and close


def _train_losses(dev, steps: int = 3):
    """Losses of ``steps`` SGD updates of sm-6-2 (seed 0 weights, one fixed 64x128 batch) in a training session
    of ``dev``, and the dtypes of the variables it updates."""
    from pwcflow.model import losses
    from pwcflow.model.pwcnet import ModelSpec, pwcnet
    from pwcflow.tf1 import tf

    rng = np.random.RandomState(0)
    img = rng.rand(1, 64 + 2, 128 + 3, 3).astype(np.float32)
    x = np.stack([img[:, :64, :128], img[:, 2:, 3:]], axis=1)  # frame 2 moved by (u, v) = (-3, -2)
    y = np.broadcast_to(np.array([-3.0, -2.0], np.float32), (1, 64, 128, 2))
    with tf.Graph().as_default() as g:
        tf.set_random_seed(0)
        _, pyramid = pwcnet(tf.constant(x), ModelSpec(name="sm-6-2", dense=False, context_all_levels=False))
        order, eps, q = losses.KINDS["robust"]
        loss = losses.pyramid_loss(tf.constant(y), pyramid, order, eps, q)[0] + losses.weight_decay(
            tf.trainable_variables(), 4e-4)
        train_op = tf.train.GradientDescentOptimizer(1e-4).minimize(loss)
        dtypes = {v.dtype.base_dtype for v in tf.trainable_variables()}
        with tf.Session(graph=g, config=backend.base_config(dev, training=True)) as sess:
            sess.run(tf.global_variables_initializer())
            got = [sess.run([loss, train_op])[0] for _ in range(steps)]
    return np.array(got), dtypes


@pytest.mark.skipif(not HAS_BF16, reason="needs a CPU with bfloat16 units and TF 2.x with oneDNN")
def test_bf16_training_steps_run_close_to_fp32():
    """bf16 training: forward and gradients in bfloat16, float32 master weights; the loss follows fp32's."""
    from pwcflow.tf1 import tf

    fp32, dtypes32 = _train_losses(_dev())
    bf16, dtypes16 = _train_losses(_dev(precision="bf16"))
    assert dtypes32 == dtypes16 == {tf.float32}  # the variables (master weights) stay float32
    assert np.all(np.isfinite(bf16)) and not np.array_equal(bf16, fp32)  # bf16 ran, without loss scaling
    assert np.allclose(bf16, fp32, rtol=1e-3), (fp32, bf16)  # measured here: ~6e-5

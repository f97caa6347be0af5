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


def _kernel_of(conv) -> str:
    """The layer (``featpyr/conv1a``) whose kernel variable a Conv2D / transpose conv reads, through casts/splits."""
    todo = [conv.inputs[1].op]
    while todo:
        op = todo.pop()
        if op.type in ("VariableV2", "VarHandleOp"):
            return op.name.split("/", 1)[1].rsplit("/", 1)[0]
        todo += [t.op for t in op.inputs]
    raise AssertionError("no kernel variable above %s" % conv.name)


def _graph_dtypes(keep):
    """(layer -> the dtypes of its convolutions, the flows' dtypes, whether any bfloat16 tensor exists) of sm-6-2
    built with the float32 keep-list ``keep``."""
    from pwcflow.model.pwcnet import ModelSpec, pwcnet
    from pwcflow.tf1 import tf

    with tf.Graph().as_default() as g:  # split convolutions on every backend: the keep-list holds across groups
        with precision.graph(keep), tuning.conv_splitting(200000):
            flow, pyramid = pwcnet(tf.placeholder(tf.float32, [1, 2, 64, 128, 3]),
                                   ModelSpec(name="sm-6-2", dense=False, context_all_levels=False))
        convs = {}  # every convolution of a layer (split groups, both frames' pyramids) is checked
        for op in g.get_operations():
            if op.type in ("Conv2D", "Conv2DBackpropInput"):
                convs.setdefault(_kernel_of(op), set()).add(op.get_attr("T").name)
        bf16_any = any(t.dtype.base_dtype == tf.bfloat16 for op in g.get_operations() for t in op.outputs)
    return convs, {flow.dtype.name} | {f.dtype.name for f in pyramid}, bf16_any


def test_fp32_is_the_default_and_changes_nothing():
    cfg = backend.base_config(_dev(), training=False)
    rewrite = cfg.graph_options.rewrite_options
    if not IS_TF1:  # bf16 is built into the graph, never a session rewrite
        assert rewrite.auto_mixed_precision_onednn_bfloat16 == type(rewrite).DEFAULT
    assert precision.check(_dev()) == "fp32" and precision.fp32_layers(_dev()) is None
    convs, outs, bf16_any = _graph_dtypes(None)
    assert set().union(*convs.values()) == {"float32"} and outs == {"float32"} and not bf16_any


def test_keep_list_is_a_setting_of_the_cpu_profile():
    assert "predict_flow/flow*" in _dev().bf16_fp32_layers
    assert _dev(bf16_fp32_layers=[]).bf16_fp32_layers == ()
    assert _dev("gpu", allow_growth=True).bf16_fp32_layers is None


@pytest.mark.parametrize("keep", [(), ("featpyr/conv1*", "predict_flow/flow*", "upsample/*")])
def test_bf16_graph_keeps_exactly_the_listed_layers_in_float32(keep, monkeypatch):
    """Every convolution is bfloat16 except those a pattern names; flows leave every level in float32."""
    import fnmatch

    monkeypatch.setenv(tuning.SHARED_ENV, "0")  # one convolution per layer (TF 1.15 would share two heads)

    convs, outs, _ = _graph_dtypes(keep)
    assert outs == {"float32"}
    assert len(convs) == 6 * 3 + 5 * 6 + 7 + 4 * 2  # every layer found: pyramid, estimators, context, upsampling
    for layer, dtypes in convs.items():
        kept = any(fnmatch.fnmatchcase(layer, pat) for pat in keep)
        assert dtypes == {"float32" if kept else "bfloat16"}, (layer, dtypes)
    assert ("float32" in set().union(*convs.values())) == bool(keep)


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


def _pair_b_epe(ref_dir, variant: str, keep) -> tuple:
    """EPE (vs the true u=3, v=2) and flow of the tfoptflow reference pair b, recipe weights, built with ``keep``."""
    from pwcflow.data import flowio
    from pwcflow.inference.predictor import FlowPredictor
    from pwcflow.reference import parity

    imgs = [flowio.read_image(str(ref_dir / variant / ("pair_b_img%d.png" % i))) for i in (1, 2)]
    p = FlowPredictor(parity.SPECS[variant], str(ref_dir / variant / "pwcnet.ckpt"), bf16_fp32=keep)
    try:
        flow = p.predict(*imgs)
    finally:
        p.close()
    return float(np.sqrt(((flow - np.array([3.0, 2.0], np.float32)) ** 2).sum(-1)).mean()), flow


@pytest.mark.skipif(not HAS_BF16, reason="needs a CPU with bfloat16 units and TF 2.x with oneDNN")
@pytest.mark.parametrize("variant", ["sm", "lg"])
def test_bf16_flows_within_the_stated_tolerance(ref_dir, variant):
    """The default keep-list: EPE change <= 0.01 px (the stated tolerance, docs/devices.md); flows move."""
    keep = precision.fp32_layers(_dev(precision="bf16"))
    fp32, flow32 = _pair_b_epe(ref_dir, variant, None)
    bf16, flow16 = _pair_b_epe(ref_dir, variant, keep)
    print("%s pair b EPE fp32 %.4f bf16 %.4f change %+.4f max %.3f px" % (
        variant, fp32, bf16, bf16 - fp32, np.abs(flow16 - flow32).max()))
    assert 0 < np.abs(flow16 - flow32).max() < 0.5  # bf16 ran (not bit-equal)
    assert abs(bf16 - fp32) <= 0.01


@pytest.mark.skipif(not HAS_BF16, reason="needs a CPU with bfloat16 units and TF 2.x with oneDNN")
def test_a_bf16_predictor_is_frozen_and_gives_the_same_flows(ref_dir):
    """bf16 predictors hold their filters as constants (oneDNN then keeps the reordered bf16 filters across
    calls): no kernel variable is left, and the flows and pyramid equal those of the unfrozen graph."""
    from pwcflow.data import flowio
    from pwcflow.inference.predictor import FlowPredictor, to_input
    from pwcflow.reference import parity

    keep = precision.fp32_layers(_dev(precision="bf16"))
    x = to_input(*[flowio.read_image(str(ref_dir / "sm" / ("pair_b_img%d.png" % i))) for i in (1, 2)])[None]
    out = {}
    for freeze in (None, False):
        p = FlowPredictor(parity.SPECS["sm"], str(ref_dir / "sm" / "pwcnet.ckpt"), bf16_fp32=keep, freeze=freeze)
        kernels = {op.name for op in p.graph.get_operations() if op.type in ("VariableV2", "VarHandleOp")
                   and op.name.endswith("kernel")}
        out[freeze] = p.predict_batch(x, with_pyramid=True), kernels
        p.close()
    (flow, pyramid), kernels = out[None]
    (flow_v, pyramid_v), kernels_v = out[False]
    assert len(kernels_v) > 50 and not kernels
    assert len(pyramid) == len(pyramid_v) == 5
    np.testing.assert_allclose(flow, flow_v, atol=1e-5)
    for a, b in zip(pyramid, pyramid_v):
        np.testing.assert_allclose(a, b, atol=1e-5)


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
    with tf.Graph().as_default() as g, precision.graph(precision.fp32_layers(dev)):
        tf.set_random_seed(0)
        _, pyramid = pwcnet(tf.constant(x), ModelSpec(name="sm-6-2", dense=False, context_all_levels=False))
        order, eps, q = losses.KINDS["robust"]
        loss = losses.pyramid_loss(tf.constant(y), pyramid, order, eps, q)[0] + losses.weight_decay(
            tf.trainable_variables(), 4e-4)
        train_op = tf.train.GradientDescentOptimizer(1e-4).minimize(loss)
        dtypes = {v.dtype.base_dtype for v in tf.trainable_variables()}
        dtypes |= {"grad " + op.get_attr("T").name for op in g.get_operations() if op.type == "Conv2DBackpropFilter"}
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
    assert dtypes32 == {tf.float32, "grad float32"}
    assert dtypes16 == {tf.float32, "grad bfloat16", "grad float32"}  # master weights float32, gradients bf16
    # (float32 gradients: the keep-list's layers)
    assert np.all(np.isfinite(bf16)) and not np.array_equal(bf16, fp32)  # bf16 ran, without loss scaling
    assert np.allclose(bf16, fp32, rtol=1e-3), (fp32, bf16)  # measured here: ~6e-5

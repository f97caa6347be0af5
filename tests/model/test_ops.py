"""The cost-volume / warp / convolution-split formulations: same flows whichever is built, and ``auto``'s choice
per backend (logged when the graph is built, overridable)."""


import numpy as np
import pytest

from pwcflow.errors import UserError
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model import ops, tuning
from pwcflow.model.pwcnet import ModelSpec

SHAPE = (1, 2, 64, 128, 3)


def _pair() -> np.ndarray:
    rs = np.random.RandomState(3)
    img = rs.rand(72, 140, 3).astype(np.float32)
    return np.stack([img[4:68, 6:134], img[2:66, 3:131]])[None]  # frame 2 = frame 1 moved by (2, 3) px


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """tfoptflow's formulation throughout (no split) with random weights, saved: (ckpt, flow, pyramid)."""
    spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False, costvol_impl="reference",
                     warp_impl="reference")
    with tuning.conv_splitting(0):
        p = FlowPredictor(spec, None, seed=0, input_shape=SHAPE)
    ckpt = p.saver.save(p.sess, str(tmp_path_factory.mktemp("w") / "pwcnet.ckpt"), write_meta_graph=False)
    flow, pyr = p.predict_batch(_pair(), with_pyramid=True)
    p.close()
    return ckpt, flow, pyr


@pytest.mark.parametrize("costvol,warp,split,shared", [
    ("fused", "fused", 4096, "0"),     # oneDNN's choice, with the split forced at a small size (Eigen's: no split)
    ("fused", "fused", 0, "1"),        # Eigen's choice: one convolution for the flow head and context layer 1
    ("fused", "fused", 4096, "1"),     # both
    ("reference", "fused", 0, "0"),
    ("fused", "reference", None, "0"),  # the machine's default split
    ("patches", "fused", 0, "0"),
    ("auto", "auto", None, ""),        # whatever this machine picks
])
def test_every_formulation_gives_the_same_flow(reference, monkeypatch, costvol, warp, split, shared):
    ckpt, flow_ref, pyr_ref = reference
    monkeypatch.setenv(tuning.SHARED_ENV, shared)
    spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False, costvol_impl=costvol, warp_impl=warp)
    with tuning.conv_splitting(split):
        p = FlowPredictor(spec, ckpt, input_shape=SHAPE)
    flow, pyr = p.predict_batch(_pair(), with_pyramid=True)
    p.close()
    assert np.abs(flow).max() > 0.1  # a real flow, not zeros
    np.testing.assert_allclose(flow, flow_ref, atol=1e-4, rtol=0)
    for a, b in zip(pyr, pyr_ref):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shared", ["0", "1"])
def test_lg_shared_heads_give_the_same_flow_at_every_level(tmp_path, monkeypatch, shared):
    """lg-6-2 has a context network at every level: each level's flow head + first context layer is the shared
    convolution (or not), against tfoptflow's formulation with the same weights."""
    from pwcflow.tf1 import tf

    def build(**kw):
        spec = ModelSpec(name="lg-6-2", dense=True, context_all_levels=True, **kw)
        return FlowPredictor(spec, ckpt, input_shape=SHAPE)

    with tuning.conv_splitting(0):
        monkeypatch.setenv(tuning.SHARED_ENV, "0")
        ref = FlowPredictor(ModelSpec(name="lg-6-2", dense=True, context_all_levels=True, costvol_impl="reference",
                                      warp_impl="reference"), None, seed=0, input_shape=SHAPE)
        ckpt = ref.saver.save(ref.sess, str(tmp_path / "pwcnet.ckpt"), write_meta_graph=False)
        flow_ref, pyr_ref = ref.predict_batch(_pair(), with_pyramid=True)
        ref.close()
        monkeypatch.setenv(tuning.SHARED_ENV, shared)
        p = build()
        n_conv = len([o for o in p.sess.graph.get_operations() if o.type == "Conv2D"])
        flow, pyr = p.predict_batch(_pair(), with_pyramid=True)
        p.close()
    assert np.abs(flow).max() > 0.1
    np.testing.assert_allclose(flow, flow_ref, atol=1e-4, rtol=0)
    for a, b in zip(pyr, pyr_ref):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
    # 5 levels with a context network: one convolution fewer per level when shared
    with tf.Graph().as_default():
        monkeypatch.setenv(tuning.SHARED_ENV, "0" if shared == "1" else "1")
        with tuning.conv_splitting(0):
            other = build()
        n_other = len([o for o in other.sess.graph.get_operations() if o.type == "Conv2D"])
        other.close()
    assert n_other - n_conv == (5 if shared == "1" else -5)


def test_split_convolution_is_really_split():
    from pwcflow.tf1 import tf

    for limit, many in ((0, False), (4096, True)):
        with tf.Graph().as_default() as g, tuning.conv_splitting(limit):
            ops.conv2d(tf.zeros([1, 8, 8, 64]), 64, "c")
            convs = [o for o in g.get_operations() if o.type == "Conv2D"]
        assert (len(convs) > 1) == many


def test_config_accepts_auto_and_rejects_others():
    from omegaconf import OmegaConf

    from pwcflow.config import commands

    base = dict(name="sm-6-2", dense=False, context_all_levels=False, pyr_lvls=6, flow_pred_lvl=2, search_range=4,
                costvol_impl="auto", warp_impl="auto")
    assert commands.model_spec(OmegaConf.create(base)).costvol_impl == "auto"
    with pytest.raises(UserError, match="model.warp_impl"):
        commands.model_spec(OmegaConf.create(dict(base, warp_impl="patches")))

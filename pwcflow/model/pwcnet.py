"""The PWC-Net graph: feature pyramid -> per level warp / cost volume / estimate / up-sample -> context.

Variables are created with tfoptflow's names, shapes and order (``pwcflow/reference/RECIPE.md``), so its
checkpoints restore unchanged. The builder is a pure function of (input tensor, ``ModelSpec``).
"""

import logging
from typing import List, Tuple

from pwcflow.model import ops, tuning
from pwcflow.model.spec import ModelSpec  # noqa: F401 (re-exported)
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.model")

PYRAMID_CHANNELS = (16, 32, 64, 96, 128, 196)
ESTIMATOR_CHANNELS = (128, 128, 96, 64, 32)
CONTEXT_LAYERS = ((128, 1), (128, 2), (128, 4), (96, 8), (64, 16), (32, 1))


def feature_pyramid(x: tf.Tensor, spec: ModelSpec) -> Tuple[List[tf.Tensor], List[tf.Tensor]]:
    """Shared-weight 6-level pyramids of both frames; lists are 1-based (index 0 is None)."""
    pyramids = []
    with tf.variable_scope("featpyr"):
        for frame, reuse in ((0, None), (1, True)):
            feat = x[:, frame]
            pyr = [None]
            for lvl in range(1, spec.pyr_lvls + 1):
                ch = PYRAMID_CHANNELS[lvl - 1]
                feat = ops.conv2d(feat, ch, "conv%da" % lvl, stride=2, init=ops.he_normal(), reuse=reuse)
                feat = ops.conv2d(feat, ch, "conv%daa" % lvl, init=ops.he_normal(), reuse=reuse)
                feat = ops.conv2d(feat, ch, "conv%db" % lvl, init=ops.he_normal(), reuse=reuse)
                pyr.append(feat)
            pyramids.append(pyr)
    return pyramids[0], pyramids[1]


def estimate_flow(x: tf.Tensor, lvl: int, dense: bool, context: bool) -> Tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Flow estimator at one level; returns (features for up-sampling, flow, first context layer or None).

    With ``context`` and ``tuning.shared_heads()`` the flow head and the context network's first layer (both
    read the estimator's features) run as one convolution (``ops.shared_input_convs``); either way the
    variables keep tfoptflow's names and order.
    """
    with tf.variable_scope("predict_flow"):
        for i, ch in enumerate(ESTIMATOR_CHANNELS):
            act = ops.conv2d(x, ch, "conv%d_%d" % (lvl, i), init=ops.he_normal())
            x = ops.concat([act, x], axis=3) if dense else act
        if not (context and tuning.shared_heads() and ops.compute_dtype("predict_flow/flow%d" % lvl)
                == ops.compute_dtype("ctxt/dc_conv%d1" % lvl) == x.dtype):
            return x, ops.conv2d(x, 2, "flow%d" % lvl, act=False), None
        with tf.variable_scope("flow%d" % lvl):
            flow_vars = ops.conv_variables(x, 2)
    with tf.variable_scope("ctxt"), tf.variable_scope("dc_conv%d1" % lvl):
        ctx_vars = ops.conv_variables(x, CONTEXT_LAYERS[0][0], ops.he_normal())  # undilated, like the flow head
    flow, ctx = ops.shared_input_convs(x, [flow_vars + (False,), ctx_vars + (True,)])
    return x, flow, ctx


def refine_flow(feat: tf.Tensor, ctx: tf.Tensor, flow: tf.Tensor, lvl: int) -> tf.Tensor:
    """Context network (dilated convs 1,2,4,8,16,1 then a 2-channel conv) on ``feat`` added to the flow;
    ``ctx``: its first layer's output where ``estimate_flow`` computed it, else None."""
    with tf.variable_scope("ctxt"):
        x = ctx if ctx is not None else ops.conv2d(feat, CONTEXT_LAYERS[0][0], "dc_conv%d1" % lvl,
                                                   init=ops.he_normal())
        for i, (ch, dil) in enumerate(CONTEXT_LAYERS[1:], start=2):
            x = ops.conv2d(x, ch, "dc_conv%d%d" % (lvl, i), dilation=dil, init=ops.he_normal())
        x = ops.conv2d(x, 2, "dc_conv%d7" % lvl, init=ops.he_normal(), act=False)
    return ops.to(flow, tf.float32) + ops.to(x, tf.float32)


def pwcnet(x: tf.Tensor, spec: ModelSpec, name: str = "pwcnet") -> Tuple[tf.Tensor, List[tf.Tensor]]:
    """Build PWC-Net on ``x`` [B, 2, H, W, 3] (RGB in [0, 1], H and W multiples of ``spec.multiple``).

    Returns the full-resolution flow (level-2 flow resized x4 with TF1's legacy bilinear resize,
    times 4) and the pyramid of flows, coarsest first, each in its own level's pixel units.
    """
    costvol_impl, warp_impl = tuning.resolve(spec.costvol_impl, spec.warp_impl)
    log.info("%s graph: %s", spec.name, tuning.describe(spec.costvol_impl, spec.warp_impl))
    with tf.variable_scope(name):
        c1, c2 = feature_pyramid(x, spec)
        flows = []
        up_flow = up_feat = None
        for lvl in range(spec.pyr_lvls, spec.flow_pred_lvl - 1, -1):
            if lvl == spec.pyr_lvls:
                corr = ops.cost_volume(c1[lvl], c2[lvl], spec.search_range, costvol_impl, layer="cost_volume%d" % lvl)
                est_in = corr
            else:
                warped = ops.warp(c2[lvl], up_flow * (20.0 / 2 ** lvl), warp_impl, layer="warp%d" % lvl)
                corr = ops.cost_volume(c1[lvl], warped, spec.search_range, costvol_impl, layer="cost_volume%d" % lvl)
                est_in = ops.concat([corr, c1[lvl], up_flow, up_feat], axis=3)
            context = lvl == spec.flow_pred_lvl or spec.context_all_levels
            feat, flow, ctx = estimate_flow(est_in, lvl, spec.dense, context)
            if context:
                flow = refine_flow(feat, ctx, flow, lvl)
            flow = ops.to(flow, tf.float32)
            flows.append(flow)
            if lvl != spec.flow_pred_lvl:
                with tf.variable_scope("upsample"):
                    up_flow = ops.deconv2x(flow, "up_flow%d" % lvl)
                    up_feat = ops.deconv2x(feat, "up_feat%d" % lvl)
        scale = 2 ** spec.flow_pred_lvl
        size = tf.shape(flow)[1:3] * scale
        flow_full = tf.identity(ops.resize_bilinear_legacy(flow, size) * scale, name="flow_pred")
    return flow_full, flows

"""A stand-in for Ascend's npu_bridge (signatures as in Ascend/tensorflow's tf_adapter), as a pytest fixture."""

import sys
from types import ModuleType, SimpleNamespace

import pytest

from pwcflow.tf1 import tf


@pytest.fixture
def fake_npu_bridge(monkeypatch):
    """Modules named and shaped like npu_bridge's (signatures as in Ascend/tensorflow's tf_adapter), recording use."""
    rec = SimpleNamespace(distributed=[], loss_scaled=[], broadcast=[], allreduce=[], overflow_at=set())

    class NPUDistributedOptimizer:
        def __init__(self, optimizer, is_weight_update_sharding=False, name=None):
            self.inner = optimizer
            rec.distributed.append(self)

        def minimize(self, loss, global_step=None):
            return self.inner.minimize(loss, global_step=global_step)

    class NPUBroadcastGlobalVariablesHook:  # npu_hook.py: broadcasts tf.trainable_variables() only
        def __init__(self, root_rank=None, index=None):
            self.args = (root_rank, index)

        def begin(self):
            pass

        def after_create_session(self, session, coord):
            pass

    def broadcast(tensor, root_rank, fusion=2, fusion_id=0, group="hccl_world_group"):
        """hccl_ops.broadcast: a list in, a list out; here every value "received from rank 0" is 7."""
        rec.broadcast.append((list(tensor), root_rank))
        return [t * 0 + 7 for t in tensor]

    def allreduce(tensor, reduction, fusion=1, fusion_id=-1, group="hccl_world_group"):
        """hccl_ops.allreduce(tensor, reduction, fusion, fusion_id, group): one rank here, so the sum is the tensor."""
        rec.allreduce.append((reduction, fusion, tensor.dtype))
        return tensor * 1

    class ExponentialUpdateLossScaleManager:
        """npu_loss_scale_manager.py's shape: a loss-scale variable, halved on overflow, doubled when finite."""

        def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2, incr_ratio=2,
                     decr_ratio=0.8):
            self.args = dict(init_loss_scale=init_loss_scale, incr_every_n_steps=incr_every_n_steps,
                             decr_every_n_nan_or_inf=decr_every_n_nan_or_inf, incr_ratio=incr_ratio,
                             decr_ratio=decr_ratio)
            self._scale = None

        def get_loss_scale(self):
            if self._scale is None:
                self._scale = tf.Variable(float(self.args["init_loss_scale"]), trainable=False, name="loss_scale")
            return self._scale

        def update_loss_scale(self, finite):
            scale = self.get_loss_scale()
            return tf.cond(finite, lambda: scale.assign(scale * self.args["incr_ratio"]).op,
                           lambda: scale.assign(scale * self.args["decr_ratio"]).op)

    class NPULossScaleOptimizer:
        """npu_loss_scale_optimizer.py's apply_gradients (Ascend/tensorflow 085a7b2e, lines 53-92): the inner
        optimizer's apply_gradients (which advances global_step) runs only in the finite branch of a cond.
        Overflow is simulated: the N-th call is not finite when N is in ``rec.overflow_at``."""

        def __init__(self, opt, loss_scale_manager, is_distributed=False):
            self.opt, self.manager, self.is_distributed = opt, loss_scale_manager, is_distributed
            rec.loss_scaled.append(self)
            self._calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="fake_overflow_calls")

        def minimize(self, loss, global_step=None, var_list=None, name=None):
            grads = self.opt.compute_gradients(loss * self.manager.get_loss_scale(), var_list=var_list)
            scale = self.manager.get_loss_scale()
            grads = [(g / scale if g is not None else None, v) for g, v in grads]
            return self.apply_gradients(grads, global_step, name)

        def apply_gradients(self, grads_and_vars, global_step=None, name=None):
            calls = self._calls.assign_add(1)
            finite = tf.logical_not(tf.reduce_any(tf.equal(calls, tf.constant(sorted(rec.overflow_at) or [-1],
                                                                              tf.int64))))
            update = tf.cond(finite, lambda: self.opt.apply_gradients(grads_and_vars, global_step, name),
                             tf.no_op)
            return tf.group(update, self.manager.update_loss_scale(finite))

    contents = {
        "npu_bridge": {}, "npu_bridge.estimator": {}, "npu_bridge.estimator.npu": {},
        "npu_bridge.estimator.npu_ops": {},
        "npu_bridge.estimator.npu.npu_optimizer": {"NPUDistributedOptimizer": NPUDistributedOptimizer},
        "npu_bridge.estimator.npu.npu_hook": {"NPUBroadcastGlobalVariablesHook": NPUBroadcastGlobalVariablesHook},
        "npu_bridge.estimator.npu.npu_loss_scale_manager": {
            "ExponentialUpdateLossScaleManager": ExponentialUpdateLossScaleManager},
        "npu_bridge.estimator.npu.npu_loss_scale_optimizer": {"NPULossScaleOptimizer": NPULossScaleOptimizer},
        "npu_bridge.hccl": {}, "npu_bridge.hccl.hccl_ops": {"broadcast": broadcast, "allreduce": allreduce},
    }
    for name, attrs in contents.items():
        module = ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return rec

"""A stand-in for Ascend's npu_bridge (signatures as in Ascend/tensorflow's tf_adapter), as a pytest fixture."""

import sys
from types import ModuleType, SimpleNamespace

import pytest


@pytest.fixture
def fake_npu_bridge(monkeypatch):
    """Modules named and shaped like npu_bridge's (signatures as in Ascend/tensorflow's tf_adapter), recording use."""
    rec = SimpleNamespace(distributed=[], loss_scaled=[], broadcast=[])

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

    class ExponentialUpdateLossScaleManager:
        def __init__(self, init_loss_scale, incr_every_n_steps, decr_every_n_nan_or_inf=2, incr_ratio=2,
                     decr_ratio=0.8):
            self.args = dict(init_loss_scale=init_loss_scale, incr_every_n_steps=incr_every_n_steps,
                             decr_every_n_nan_or_inf=decr_every_n_nan_or_inf, incr_ratio=incr_ratio,
                             decr_ratio=decr_ratio)

    class NPULossScaleOptimizer:
        def __init__(self, opt, loss_scale_manager, is_distributed=False):
            self.opt, self.manager, self.is_distributed = opt, loss_scale_manager, is_distributed
            rec.loss_scaled.append(self)

    contents = {
        "npu_bridge": {}, "npu_bridge.estimator": {}, "npu_bridge.estimator.npu": {},
        "npu_bridge.estimator.npu_ops": {},
        "npu_bridge.estimator.npu.npu_optimizer": {"NPUDistributedOptimizer": NPUDistributedOptimizer},
        "npu_bridge.estimator.npu.npu_hook": {"NPUBroadcastGlobalVariablesHook": NPUBroadcastGlobalVariablesHook},
        "npu_bridge.estimator.npu.npu_loss_scale_manager": {
            "ExponentialUpdateLossScaleManager": ExponentialUpdateLossScaleManager},
        "npu_bridge.estimator.npu.npu_loss_scale_optimizer": {"NPULossScaleOptimizer": NPULossScaleOptimizer},
        "npu_bridge.hccl": {}, "npu_bridge.hccl.hccl_ops": {"broadcast": broadcast},
    }
    for name, attrs in contents.items():
        module = ModuleType(name)
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, module)
    return rec

"""Data parallelism on the engines TensorFlow and Ascend ship, behind one small interface.

- ``Engine``: one process, no communication (the trivial case).
- ``CollectiveEngine`` (cpu/gpu): ``tf.distribute`` MultiWorkerMirroredStrategy, i.e. collective all-reduce,
  driven from graph mode: this module starts the worker's ``tf.distribute.Server`` itself.
- ``HcclEngine`` (npu): npu_bridge's ``NPUDistributedOptimizer`` (HCCL all-reduce over the rank table) and
  ``NPUBroadcastGlobalVariablesHook``; ranks come from RANK_TABLE_FILE / RANK_ID / RANK_SIZE.

How a training runner uses it::

    engine = distribute.create(cfg.device)            # reads cfg.device.distribute, TF_CONFIG or RANK_*
    with tf.Graph().as_default(), engine.scope():     # create global_step (and everything else) in scope
        step = tf.train.get_or_create_global_step()
        opt = backend.wrap_optimizer(base_opt, cfg.device, distributed=engine.size > 1)
        train_op, loss = engine.build_train_op(loss_fn, opt, step)   # loss_fn reads its shard of the data
    sess_cfg = backend.session_config(cfg.device, engine)
    # MonitoredTrainingSession(master=engine.target, config=sess_cfg, hooks=engine.hooks(), is_chief=True)
    # on EVERY worker (non-chiefs would wait forever for a chief that shares no variables with them);
    # write checkpoints and summaries only where engine.is_chief. Run train_op every step on every worker.

``size`` counts replicas (workers x local devices); each replica's ``loss_fn`` call reads its own batch, so
the global batch is the per-replica batch x ``size``. Learning rates are left to config: the runner scales
them by ``size`` when ``train.scale_lr_with_workers`` is true.
"""

import contextlib
import json
import logging
import os
from typing import Callable, Dict, List, Optional, Tuple

from pwcflow.config.groups import DeviceConfig, Distribute, check_address
from pwcflow.device import backend
from pwcflow.errors import UserError
from pwcflow.tf1 import IS_TF1, tf

log = logging.getLogger("pwcflow.distribute")
Cluster = Tuple[Dict[str, List[str]], str, int]


class Engine:
    """A single process: no communication. The base of the other engines."""

    name = "single"

    def __init__(self) -> None:
        self.rank, self.size, self.num_workers, self.local_rank = 0, 1, 1, 0
        self.is_chief, self.target = True, ""

    def session_config(self, base: tf.ConfigProto) -> tf.ConfigProto:
        """``base`` plus what the engine needs in the session (nothing here)."""
        return base

    def scope(self):
        """Context manager to build the training graph in."""
        return contextlib.nullcontext()

    def build_train_op(self, loss_fn: Callable[[], tf.Tensor], optimizer: tf.train.Optimizer,
                       global_step: tf.Variable) -> Tuple[tf.Operation, tf.Tensor]:
        """``(train_op, loss)``: ``loss_fn`` builds one replica's mean loss; ``loss`` is the mean over replicas."""
        loss = loss_fn()
        return optimizer.minimize(loss, global_step=global_step), loss

    def hooks(self) -> list:
        """``SessionRunHook``s the training session needs (e.g. the initial broadcast of variables)."""
        return []

    def after_restore(self, sess: tf.Session) -> None:
        """Make every rank hold rank 0's state once the session is restored (nothing to do here)."""

    def shard(self) -> Tuple[int, int]:
        """``(index, count)`` for ``tf.data.Dataset.shard``: one shard per worker process."""
        return self.rank, self.num_workers

    def sum_across(self, values: tf.Tensor) -> tf.Tensor:
        """``values`` (float64) summed over the worker processes: built in the training graph, run by every worker
        at the same point (validation's per-worker sums); here, one process, the values themselves."""
        return tf.identity(values)


class CollectiveEngine(Engine):
    """MultiWorkerMirroredStrategy (collective all-reduce) over ``cluster``, driven from graph mode."""

    name = "collective"

    def __init__(self, dev: DeviceConfig, cluster: Cluster, communication: str) -> None:
        super().__init__()
        spec, task_type, task_index = cluster
        addresses = spec.get("chief", []) + spec.get("worker", [])
        self.rank = len(spec.get("chief", [])) * (task_type == "worker") + task_index
        self.num_workers, self.is_chief = len(addresses), self.rank == 0
        self.local_rank = backend.local_index(addresses, self.rank)
        base = backend.base_config(dev, self.local_rank)
        self.strategy = _strategy(spec, task_type, task_index, communication, _num_gpus(dev, base))
        self.size = int(self.strategy.num_replicas_in_sync)
        try:
            server = tf.distribute.Server(tf.train.ClusterSpec(spec), job_name=task_type, task_index=task_index,
                                          protocol="grpc", config=self.strategy.update_config_proto(base), start=True)
        except (tf.errors.OpError, ValueError) as exc:
            raise UserError("could not start worker %d on %s (%s): is that port free on this host?" % (
                self.rank, addresses[self.rank], str(exc).splitlines()[0] if str(exc) else type(exc).__name__))
        self.server, self.target = server, server.target
        log.info("collective all-reduce: worker %d of %d (%s), %d replicas in sync",
                 self.rank, self.num_workers, addresses[self.rank], self.size)

    def session_config(self, base: tf.ConfigProto) -> tf.ConfigProto:
        """``base`` with the collective group leader, device filters and scoped allocator the strategy needs."""
        return self.strategy.update_config_proto(base)

    def scope(self):
        """The strategy's scope: variables become mirrored, initial values are broadcast from worker 0."""
        return self.strategy.scope()

    def build_train_op(self, loss_fn: Callable[[], tf.Tensor], optimizer: tf.train.Optimizer,
                       global_step: tf.Variable) -> Tuple[tf.Operation, tf.Tensor]:
        """One ``loss_fn`` call per replica; gradients are all-reduced inside ``apply_gradients``.

        The all-reduce SUMS gradients, so each replica's loss is divided by the replica count: the update is
        the one of the mean loss over the global batch. The returned loss is that mean (summed the same way);
        ``train_op`` depends on it, so fetching ``[train_op, loss]`` runs the same collectives on every worker.
        """
        replicas = self.size

        def replica_step():
            scaled = loss_fn() / replicas
            return optimizer.minimize(scaled, global_step=global_step), scaled

        with self.strategy.scope():
            train, scaled = self.strategy.extended.call_for_each_replica(replica_step)
            loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, scaled, axis=None)
            train_op = tf.group(*self.strategy.experimental_local_results(train), loss, name="train_op")
        return train_op, loss

    def sum_across(self, values: tf.Tensor) -> tf.Tensor:
        """One collective all-reduce (SUM) of ``values`` over the workers; every local replica carries this
        worker's values, so the sum is divided by the replicas per worker."""
        with self.strategy.scope():
            per_replica = self.strategy.extended.call_for_each_replica(lambda: tf.identity(values))
            total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)
        local = self.size // self.num_workers
        return total / float(local) if local > 1 else total


class HcclEngine(Engine):
    """npu_bridge's HCCL all-reduce: one process per Ascend device, ranks from the rank table."""

    name = "hccl"

    def __init__(self, rank: int, size: int) -> None:
        super().__init__()
        self._npu = backend.npu_modules()
        self.rank, self.size, self.num_workers, self.is_chief = rank, size, size, rank == 0
        # the adapter's order (npu_attrs.cc GetEnvDeviceID, lines 151-166): ASCEND_DEVICE_ID, then DEVICE_ID
        self.local_rank = int(os.environ.get("ASCEND_DEVICE_ID") or os.environ.get("DEVICE_ID") or 0)
        log.info("HCCL all-reduce: rank %d of %d (device %d)", rank, size, self.local_rank)

    def build_train_op(self, loss_fn: Callable[[], tf.Tensor], optimizer: tf.train.Optimizer,
                       global_step: tf.Variable) -> Tuple[tf.Operation, tf.Tensor]:
        """``NPUDistributedOptimizer`` averages gradients across ranks (so the loss is not divided here).

        It wraps whatever ``backend.wrap_optimizer`` returned: with loss scaling inside, gradients are unscaled
        before they are averaged, and ``NPULossScaleOptimizer(is_distributed=True)`` all-reduces its overflow flag.
        """
        loss = loss_fn()
        distributed = self._npu.optimizer.NPUDistributedOptimizer(optimizer)
        return distributed.minimize(loss, global_step=global_step), loss

    def sum_across(self, values: tf.Tensor) -> tf.Tensor:
        """HCCL all-reduce (``hccl_ops.allreduce(tensor, "sum", fusion=0)``: not fused with the gradients') in
        float32, the widest float HCCL reduces; about 7 significant digits, enough for an EPE."""
        got = self._npu.hccl_ops.allreduce(tf.cast(values, tf.float32), "sum", fusion=0)
        return tf.cast(got, tf.float64)

    def hooks(self) -> list:
        """Build the broadcast of rank 0's variables (run by ``after_restore``, not at session creation)."""
        self._broadcast = BroadcastAllVariables(self._npu.hccl_ops)
        return [self._broadcast]

    def after_restore(self, sess: tf.Session) -> None:
        """Broadcast rank 0's restored (or initial) state: weights, ``global_step``, optimizer slots, loss scale.

        npu_bridge's ``NPUBroadcastGlobalVariablesHook`` covers only ``tf.trainable_variables()`` and runs in
        ``after_create_session``, i.e. before a resume's restore: ranks that resumed from different local
        checkpoints (or one from none) would then run different step counts and hang in HCCL.
        """
        sess.run(self._broadcast.op)


class BroadcastAllVariables:
    """A session hook (``begin`` only) building HCCL broadcasts from rank 0 of every global variable."""

    def __init__(self, hccl_ops, root_rank: int = 0) -> None:
        self.hccl_ops, self.root_rank, self.op = hccl_ops, root_rank, None

    def begin(self) -> None:
        """Build the op in the current graph (before it is finalized)."""
        assigns = []
        for var in tf.global_variables():
            value = var.read_value() if hasattr(var, "read_value") else var
            wide = value.dtype.base_dtype == tf.int64  # HCCL's broadcast is sure of int32/float types only
            sent = tf.cast(value, tf.int32) if wide else value
            (got,) = self.hccl_ops.broadcast(tensor=[sent], root_rank=self.root_rank)
            assigns.append(tf.assign(var, tf.cast(got, tf.int64) if wide else got))
        self.op = tf.group(*assigns, name="broadcast_from_rank0")

    def after_create_session(self, session, coord) -> None:
        """Nothing: the broadcast runs after the restore (``HcclEngine.after_restore``)."""


def _strategy(spec: Dict[str, List[str]], task_type: str, task_index: int, communication: str, gpus: int):
    """A MultiWorkerMirroredStrategy for this task (TF 1.15 reads the cluster from TF_CONFIG only)."""
    comm = getattr(tf.distribute.experimental.CollectiveCommunication, communication.upper())
    mwms = tf.distribute.experimental.MultiWorkerMirroredStrategy
    if not IS_TF1:
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task_type, task_id=task_index, rpc_layer="grpc",
            num_accelerators={"GPU": gpus} if gpus else None)
        return mwms(communication=comm, cluster_resolver=resolver)
    saved = os.environ.get("TF_CONFIG")
    os.environ["TF_CONFIG"] = json.dumps({"cluster": spec, "task": {"type": task_type, "index": task_index}})
    try:
        return mwms(communication=comm)
    finally:
        if saved is None:
            del os.environ["TF_CONFIG"]
        else:
            os.environ["TF_CONFIG"] = saved


def _num_gpus(dev: DeviceConfig, base: tf.ConfigProto) -> int:
    """GPUs this worker drives: those in ``visible_devices``, else all it sees (0 off the gpu profile)."""
    if dev.name != "gpu":
        return 0
    if base.gpu_options.visible_device_list:
        return len(base.gpu_options.visible_device_list.split(","))
    return len(tf.config.experimental.list_physical_devices("GPU"))


def cluster_from(dist: Distribute) -> Optional[Cluster]:
    """``(cluster, task_type, task_index)`` from ``distribute.workers``/``rank`` (checked by ``Distribute``),
    else TF_CONFIG; None = single process."""
    if dist.workers:
        return {"worker": list(dist.workers)}, "worker", dist.rank
    raw = os.environ.get("TF_CONFIG", "")
    if not raw.strip():
        return None
    try:
        conf = json.loads(raw)
        spec = {str(k): [str(a) for a in v] for k, v in conf.get("cluster", {}).items()}
        task_type, task_index = str(conf["task"]["type"]), int(conf["task"]["index"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserError("TF_CONFIG must be JSON with cluster and task.type/task.index (or unset it)")
    if not spec.get("worker") and not spec.get("chief"):
        return None
    if set(spec) - {"chief", "worker"} or task_type not in spec or not 0 <= task_index < len(spec[task_type]):
        raise UserError("TF_CONFIG: only chief/worker tasks are supported and task must name one of them")
    for addr in spec.get("chief", []) + spec.get("worker", []):
        check_address(addr, "TF_CONFIG")
    return spec, task_type, task_index


def _unsupported_launch() -> Optional[str]:
    """Why the launch environment is one the adapter accepts but pwcflow cannot honour (None when it can).

    tf_adapter/util/ge_plugin.cc ``GePlugin::Init`` takes ``CM_CHIEF_IP`` (rank-table-free) before
    ``RANK_TABLE_FILE``, and ``SetRankTableFileEnv`` takes ``POD_NAME`` before ``RANK_ID``: in both cases every
    process would read RANK_SIZE/RANK_ID as unset here and train alone, believing it is the chief.
    """
    env = os.environ
    if env.get("CM_CHIEF_IP") or (env.get("CM_WORKER_SIZE") or "1").strip() not in ("", "0", "1"):
        return ("rank-table-free launches (CM_CHIEF_IP/CM_WORKER_SIZE) are not supported: start one process per "
                "device with RANK_TABLE_FILE, RANK_ID and RANK_SIZE")
    if env.get("RANK_TABLE_FILE") and env.get("POD_NAME") and not env.get("RANK_ID"):
        return ("a rank table with POD_NAME but no RANK_ID is not supported: set RANK_ID (and RANK_SIZE) for each "
                "process")
    return None


def _hccl_from_env(dist: Distribute) -> Engine:
    """One HcclEngine per Ascend device when RANK_SIZE > 1, else the single-process engine."""
    why = _unsupported_launch()
    if why:
        raise UserError(why)
    try:
        size, rank = int(os.environ.get("RANK_SIZE") or 1), int(os.environ.get("RANK_ID") or 0)
    except ValueError:
        raise UserError("RANK_SIZE and RANK_ID must be integers (ModelArts and the rank-table launchers set them)")
    if size <= 1:
        if dist.workers:
            raise UserError("on npu, ranks come from RANK_TABLE_FILE/RANK_ID/RANK_SIZE, not device.distribute.workers")
        return Engine()
    table = os.environ.get("RANK_TABLE_FILE", "")
    if not table or not os.path.isfile(table):
        raise UserError("RANK_SIZE=%d needs RANK_TABLE_FILE pointing to the HCCL rank table JSON (got %r)"
                        % (size, table))
    if not 0 <= rank < size:
        raise UserError("RANK_ID=%d is not in 0..%d" % (rank, size - 1))
    return HcclEngine(rank, size)


def create(dev: DeviceConfig) -> Engine:
    """The engine for ``cfg.device`` and its ``distribute`` block."""
    if dev.name == "npu":
        return _hccl_from_env(dev.distribute)
    cluster = cluster_from(dev.distribute)
    return Engine() if cluster is None else CollectiveEngine(dev, cluster, dev.distribute.communication.lower())


def free_ports(n: int) -> List[int]:
    """``n`` free TCP ports on 127.0.0.1, for local multi-worker runs (tests, benchmarks)."""
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports

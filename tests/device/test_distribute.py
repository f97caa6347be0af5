"""Data-parallel engines: 2 CPU workers on 127.0.0.1 against one process on the combined batch, config parsing,
the npu (HCCL) engine's wiring with a stand-in npu_bridge, and its error paths.

Run as a script (``python tests/test_distribute.py RANK PORTS OUT [mixed]``) it is one worker of the 2-worker test.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from pwcflow.config.compose import compose_group
from pwcflow.device import backend, distribute
from pwcflow.errors import UserError
from pwcflow.tf1 import tf

ROOT = Path(__file__).resolve().parents[2]
STEPS, BATCH, LR = 4, 8, 0.05


def _data():
    rng = np.random.RandomState(7)
    return rng.randn(BATCH, 6, 6, 2).astype(np.float32), rng.randn(BATCH, 1).astype(np.float32)


def _dev(workers: List[str], rank: int, mixed: bool = False, **changes):
    """conf/device/cpu.yaml through the config loader: one thread each, these workers."""
    return compose_group("device", "cpu", dict({
        "intra_op_threads": 1, "inter_op_threads": 1, "mixed_precision": mixed, "distribute.workers": workers,
        "distribute.rank": rank}, **changes))


def train(workers: List[str], rank: int, seed: int, mixed: bool = False) -> Dict[str, np.ndarray]:
    """A small conv + dense regression trained STEPS steps on this worker's shard: weights, losses, step."""
    dev = _dev(workers, rank, mixed)
    engine = distribute.create(dev)
    x_all, y_all = _data()
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        index, count = engine.shard()
        data = tf.data.Dataset.from_tensor_slices((x_all, y_all)).shard(count, index).batch(BATCH // count)
        x, y = tf.data.make_one_shot_iterator(data.repeat()).get_next()

        def loss_fn() -> tf.Tensor:
            # op-level seeds: TF 1.15 derives unseeded ones from the op count, which the strategy changes
            k = tf.get_variable("conv", [3, 3, 2, 4], initializer=tf.glorot_uniform_initializer(seed=seed))
            h = tf.nn.relu(tf.nn.conv2d(x, k, [1, 1, 1, 1], "SAME"))
            w = tf.get_variable("dense", [6 * 6 * 4, 1], initializer=tf.glorot_uniform_initializer(seed=seed + 10))
            return tf.reduce_mean(tf.square(tf.matmul(tf.reshape(h, [-1, 6 * 6 * 4]), w) - y))

        with engine.scope():
            step = tf.train.get_or_create_global_step()
            opt = backend.wrap_optimizer(tf.train.MomentumOptimizer(LR, 0.9), dev, distributed=engine.size > 1)
            train_op, loss = engine.build_train_op(loss_fn, opt, step)
            init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())  # + the step counter
        weights = [v for v in tf.global_variables() if v.name.split(":")[0] in ("conv", "dense")]
        with tf.Session(engine.target, config=backend.session_config(dev, engine)) as sess:
            sess.run(init)
            first = sess.run(weights)
            losses = [sess.run([train_op, loss])[1] for _ in range(STEPS)]
            out = {"conv": sess.run(weights[0]), "dense": sess.run(weights[1]), "step": sess.run(step),
                   "losses": np.array(losses), "conv0": first[0], "size": engine.size}
    return out


def _run_workers(tmp_path: Path, mixed: bool) -> List[Dict[str, np.ndarray]]:
    ports = ",".join(str(p) for p in distribute.free_ports(2))
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("TF_CONFIG", None)
    procs = [subprocess.Popen([sys.executable, __file__, str(r), ports, str(tmp_path / ("w%d.npz" % r))]
                              + (["mixed"] if mixed else []), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for r in range(2)]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=150)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, log in zip(procs, logs):
        assert p.returncode == 0, log[-3000:]
    return [dict(np.load(str(tmp_path / ("w%d.npz" % r)))) for r in range(2)]


@pytest.mark.parametrize("mixed", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["fp32", "loss-scaled"])
def test_two_workers_match_one_process_on_combined_batch(tmp_path, mixed):
    workers = _run_workers(tmp_path, mixed)
    single = train([], 0, seed=1, mixed=mixed)
    w0, w1 = workers
    assert int(w0["size"]) == int(w1["size"]) == 2 and int(single["size"]) == 1
    # worker 1 drew other initial values (seed 2): the strategy broadcast worker 0's
    np.testing.assert_array_equal(w0["conv0"], w1["conv0"])
    np.testing.assert_array_equal(w0["conv0"], single["conv0"])
    for key in ("conv", "dense", "losses"):
        np.testing.assert_array_equal(w0[key], w1[key])  # identical: both apply the same all-reduced update
        np.testing.assert_allclose(w0[key], single[key], rtol=2e-5, atol=1e-6)
    assert int(w0["step"]) == int(w1["step"]) == int(single["step"]) == STEPS
    assert not np.allclose(single["conv"], single["conv0"])  # it trained


def test_single_process_engine(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    engine = distribute.create(_dev([], 0))
    assert type(engine) is distribute.Engine
    assert (engine.rank, engine.size, engine.is_chief, engine.target, engine.shard()) == (0, 1, True, "", (0, 1))
    assert engine.hooks() == []
    base = tf.ConfigProto()
    assert engine.session_config(base) is base


def test_cluster_from_workers_and_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    dist = _dev(["a:1", "b:2"], 1).distribute
    assert distribute.cluster_from(dist) == ({"worker": ["a:1", "b:2"]}, "worker", 1)
    assert distribute.cluster_from(_dev([], 0).distribute) is None
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    assert distribute.cluster_from(_dev([], 0).distribute) == (
        {"chief": ["c:1"], "worker": ["w:1", "w:2"]}, "worker", 1)


@pytest.mark.parametrize("dist, env, words", [
    ({"workers": ["a:1", "b:2"], "rank": 2}, None, "device.distribute.rank"),
    ({"workers": ["a:1", "a:1"], "rank": 0}, None, "twice"),
    ({"workers": ["nohostport"], "rank": 0}, None, "host:port"),
    ({"workers": [], "communication": "smoke"}, None, "communication"),
    ({"workers": ["a:1"], "rank": -1}, None, "device.distribute.rank"),
    ({"workers": []}, "{not json", "TF_CONFIG"),
    ({"workers": []}, json.dumps({"cluster": {"ps": ["p:1"], "worker": ["w:1"]}, "task": {"type": "ps", "index": 0}}),
     "chief/worker"),
])
def test_bad_distribute_settings_are_one_sentence(monkeypatch, dist, env, words):
    if env is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", env)
    with pytest.raises(UserError, match=words) as err:  # at compose time, or (TF_CONFIG) on creation
        distribute.create(_dev([], 0, **{"distribute." + k: v for k, v in dist.items()}))
    assert "\n" not in str(err.value)


def test_busy_port_is_one_sentence(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        dev = _dev(["127.0.0.1:%d" % busy.getsockname()[1], "127.0.0.1:%d" % distribute.free_ports(1)[0]], 0)
        with pytest.raises(UserError, match="port free"):
            distribute.create(dev)
    finally:
        busy.close()


def _npu_dev():
    return compose_group("device", "npu")


def test_npu_single_device_needs_no_engine(monkeypatch):
    monkeypatch.delenv("RANK_SIZE", raising=False)
    assert type(distribute.create(_npu_dev())) is distribute.Engine


@pytest.mark.parametrize("env, words", [
    ({"RANK_SIZE": "8", "RANK_ID": "0"}, "RANK_TABLE_FILE"),
    ({"RANK_SIZE": "8", "RANK_ID": "9", "RANK_TABLE_FILE": "TABLE"}, "RANK_ID=9"),
    ({"RANK_SIZE": "eight"}, "integers"),
    # tf_adapter/util/ge_plugin.cc GePlugin::Init: CM_CHIEF_IP (rank-table-free) is taken before RANK_TABLE_FILE
    ({"CM_CHIEF_IP": "192.168.1.1", "CM_WORKER_SIZE": "8"}, "rank-table-free"),
    ({"CM_WORKER_SIZE": "8"}, "CM_CHIEF_IP/CM_WORKER_SIZE"),
    # ge_plugin.cc SetRankTableFileEnv: POD_NAME is read before RANK_ID (deploy mode)
    ({"RANK_TABLE_FILE": "TABLE", "RANK_SIZE": "8", "POD_NAME": "worker-0"}, "POD_NAME but no RANK_ID"),
])
def test_npu_rank_environment_errors(monkeypatch, tmp_path, env, words):
    for key in ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE", "CM_CHIEF_IP", "CM_WORKER_SIZE", "POD_NAME"):
        monkeypatch.delenv(key, raising=False)
    table = tmp_path / "rank_table.json"
    table.write_text("{}")
    for key, value in env.items():
        monkeypatch.setenv(key, str(table) if value == "TABLE" else value)
    with pytest.raises(UserError, match=words):
        distribute.create(_npu_dev())


def test_npu_multi_device_without_npu_bridge_says_what_to_install(monkeypatch, tmp_path):
    """npu_bridge made unimportable for this test (None in sys.modules), so it runs wherever the adapter is
    installed too, whatever another test left imported."""
    for name in ["npu_bridge"] + [m for m in sys.modules if m.startswith("npu_bridge.")]:
        monkeypatch.setitem(sys.modules, name, None)
    table = tmp_path / "rank_table.json"
    table.write_text("{}")
    monkeypatch.setenv("RANK_SIZE", "2")
    monkeypatch.setenv("RANK_ID", "1")
    monkeypatch.setenv("RANK_TABLE_FILE", str(table))
    with pytest.raises(UserError) as err:
        distribute.create(_npu_dev())
    assert str(err.value) == backend.NPU_MISSING


def test_hccl_engine_wires_npu_bridge(monkeypatch, tmp_path, fake_npu_bridge):
    table = tmp_path / "rank_table.json"
    table.write_text("{}")
    monkeypatch.setenv("RANK_SIZE", "8")
    monkeypatch.setenv("RANK_ID", "3")
    monkeypatch.setenv("RANK_TABLE_FILE", str(table))
    monkeypatch.setenv("DEVICE_ID", "3")
    engine = distribute.create(_npu_dev())
    assert isinstance(engine, distribute.HcclEngine)
    assert (engine.rank, engine.size, engine.is_chief, engine.local_rank, engine.shard()) == (3, 8, False, 3, (3, 8))
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        w = tf.get_variable("w", [2], initializer=tf.ones_initializer())
        base = tf.train.GradientDescentOptimizer(0.1)
        train_op, loss = engine.build_train_op(lambda: tf.reduce_sum(w * w), base, step)
    assert fake_npu_bridge.distributed[-1].inner is base  # gradients averaged by NPUDistributedOptimizer
    assert loss.op.type == "Sum"
    with tf.Graph().as_default():  # validation's sums: one unfused float32 HCCL all-reduce, back in float64
        sums = tf.placeholder(tf.float64, [4])
        total = engine.sum_across(sums)
        with tf.Session() as sess:
            got = sess.run(total, {sums: [1.5, 2.0, 3.0, 4.0]})
    assert fake_npu_bridge.allreduce == [("sum", 0, tf.float32)] and total.dtype == tf.float64
    assert list(got) == [1.5, 2.0, 3.0, 4.0]  # one rank in the stand-in: the sum is the value itself


def _worker_main(argv: List[str]) -> None:
    rank, ports, out = int(argv[0]), argv[1].split(","), argv[2]
    mixed = len(argv) > 3 and argv[3] == "mixed"
    result = train(["127.0.0.1:%s" % p for p in ports], rank, seed=rank + 1, mixed=mixed)
    np.savez(out, **result)


if __name__ == "__main__":
    _worker_main(sys.argv[1:])


def test_hccl_broadcast_after_restore_covers_step_slots_and_loss_scale(monkeypatch, tmp_path, fake_npu_bridge):
    """A rank resumed from its own checkpoint takes rank 0's weights, global_step, Adam slots and loss scale."""
    table = tmp_path / "rank_table.json"
    table.write_text("{}")
    for key, value in (("RANK_SIZE", "2"), ("RANK_ID", "1"), ("RANK_TABLE_FILE", str(table))):
        monkeypatch.setenv(key, value)
    engine = distribute.create(_npu_dev())
    with tf.Graph().as_default():
        step = tf.train.get_or_create_global_step()
        w = tf.get_variable("w", [2], initializer=tf.ones_initializer())
        tf.get_variable("loss_scale", [], initializer=tf.constant_initializer(2.0 ** 15), trainable=False)
        train_op, _ = engine.build_train_op(lambda: tf.reduce_sum(w * w), tf.train.AdamOptimizer(0.1), step)
        hooks = engine.hooks()
        for hook in hooks:
            hook.begin()
        saver = tf.train.Saver()
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for hook in hooks:
                hook.after_create_session(sess, None)  # must not broadcast yet: the restore comes next
            sess.run(train_op)
            prefix = saver.save(sess, str(tmp_path / "ckpt"), global_step=step)
            saver.restore(sess, prefix)
            assert sess.run(step) == 1
            engine.after_restore(sess)
            values = sess.run(tf.global_variables())
    sent = {t.dtype.base_dtype for tensors, _ in fake_npu_bridge.broadcast for t in tensors}
    assert tf.int64 not in sent and all(root == 0 for _, root in fake_npu_bridge.broadcast)
    assert len(values) >= 6  # step, w, loss_scale, Adam's m and v of w, beta powers
    for value in values:
        assert np.all(np.asarray(value) == 7), values


def test_hccl_device_id_reads_ascend_device_id_first(monkeypatch, tmp_path, fake_npu_bridge):
    """npu_attrs.cc GetEnvDeviceID (085a7b2e, lines 151-166): ASCEND_DEVICE_ID wins over DEVICE_ID."""
    monkeypatch.setenv("ASCEND_DEVICE_ID", "3")
    monkeypatch.setenv("DEVICE_ID", "5")
    assert distribute.HcclEngine(1, 2).local_rank == 3
    monkeypatch.delenv("ASCEND_DEVICE_ID")
    assert distribute.HcclEngine(1, 2).local_rank == 5

"""Device profiles: session configs field by field (npu without npu_bridge), mixed precision, the npu error
path, and the ModelArts argv shim. ``fake_npu_bridge`` stands in for Ascend's adapter where wiring is checked."""

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pwcflow.cli import modelarts_argv
from pwcflow.config import commands, groups, npu_switches
from pwcflow.config.compose import compose_group
from pwcflow.device import backend
from pwcflow.errors import UserError
from pwcflow.tf1 import tf

ROOT = Path(__file__).resolve().parents[2]
HAS_NPU_BRIDGE = importlib.util.find_spec("npu_bridge") is not None


def load(option: str, **changes):
    """conf/device/<option>.yaml as a command receives it (typed by the config loader), with ``changes``."""
    return compose_group("device", option, changes)


@pytest.mark.parametrize("name", groups.PROFILES)
def test_profiles_compose_in_hydra(name):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="predict", overrides=["device=%s" % name, "ckpt=c", "img1=a", "img2=b", "out=o"])
    assert cfg.device.name == name
    assert list(cfg.device.distribute) == ["workers", "rank", "communication"]
    typed = commands.load("predict", cfg).device
    assert typed == load(name) and isinstance(backend.session_config(typed, training=False), tf.ConfigProto)
    # the profile-only keys: None where the profile does not have them
    assert (typed.precision is None) == (name != "cpu") and (typed.allow_growth is None) == (name != "gpu")
    assert (typed.npu is None) == (name != "npu")


def test_cpu_profile():
    dev = load("cpu", intra_op_threads=3, inter_op_threads=2)
    cfg = backend.session_config(dev)
    assert cfg.allow_soft_placement and not cfg.log_device_placement
    assert (cfg.intra_op_parallelism_threads, cfg.inter_op_parallelism_threads) == (3, 2)
    assert not cfg.graph_options.rewrite_options.custom_optimizers
    assert cfg.graph_options.optimizer_options.global_jit_level == 0  # DEFAULT
    assert cfg.gpu_options.visible_device_list == "" and not cfg.gpu_options.allow_growth


def test_gpu_profile_defaults_and_switches():
    dev = load("gpu")
    cfg = backend.session_config(dev)
    jit = type(cfg.graph_options.optimizer_options)
    rewrite = cfg.graph_options.rewrite_options
    assert cfg.gpu_options.allow_growth and cfg.gpu_options.visible_device_list == ""
    assert cfg.graph_options.optimizer_options.global_jit_level == jit.DEFAULT
    assert rewrite.auto_mixed_precision == type(rewrite).DEFAULT
    dev = load("gpu", visible_devices="1, 3", xla=True, mixed_precision=True, allow_growth=False)
    cfg = backend.session_config(dev)
    assert cfg.gpu_options.visible_device_list == "1,3" and not cfg.gpu_options.allow_growth
    assert cfg.graph_options.optimizer_options.global_jit_level == jit.ON_1
    assert cfg.graph_options.rewrite_options.auto_mixed_precision == type(rewrite).ON
    dev = load("gpu", visible_devices="local")
    assert backend.base_config(dev, local_rank=5).gpu_options.visible_device_list == "5"
    assert backend.session_config(dev, SimpleNamespace(local_rank=2, session_config=lambda c: c)) \
        .gpu_options.visible_device_list == "2"
    with pytest.raises(UserError, match="device.visible_devices"):
        load("gpu", visible_devices="gpu0")


def test_local_index_counts_workers_on_the_same_host():
    workers = ["a:1", "b:1", "a:2", "a:3", "b:2"]
    assert [backend.local_index(workers, r) for r in range(5)] == [0, 0, 1, 2, 1]


def _params(cfg):
    (custom,) = cfg.graph_options.rewrite_options.custom_optimizers
    assert custom.name == "NpuOptimizer"
    return {k: getattr(v, v.WhichOneof("value")) for k, v in custom.parameter_map.items()}


def test_npu_profile_field_by_field_without_npu_bridge():
    dev = load("npu")
    cfg = backend.session_config(dev)
    rewrite = cfg.graph_options.rewrite_options
    assert rewrite.remapping == type(rewrite).OFF
    assert rewrite.memory_optimization == type(rewrite).NO_MEM_OPT
    assert cfg.graph_options.optimizer_options.global_jit_level == type(cfg.graph_options.optimizer_options).OFF
    assert cfg.allow_soft_placement and not cfg.log_device_placement
    assert _params(cfg) == {
        "use_off_line": True, "precision_mode": b"allow_mix_precision", "mix_compile_mode": False,
        "graph_run_mode": 1, "iterations_per_loop": 1, "hcom_parallel": True,
        "enable_dump": False, "dump_mode": b"output", "enable_dump_debug": False,
        "dump_debug_mode": b"all", "profiling_mode": False,
    }
    # every documented switch is a key in npu.yaml, and every key there is a switch
    yaml_keys = set(OmegaConf.load(str(ROOT / "conf" / "device" / "npu.yaml")).npu)
    assert yaml_keys == {k for k, _ in npu_switches.SWITCHES} | {"extra", "types"}
    assert cfg.SerializeToString(deterministic=True) == \
        backend.session_config(load("npu")).SerializeToString(deterministic=True)


def test_npu_switches_follow_config(tmp_path):
    dump = tmp_path / "dump" / "here"
    changes = {"npu.precision_mode": "must_keep_origin_dtype", "mixed_precision": False}
    changes.update({"npu." + k: v for k, v in {
        "hcom_parallel": False, "enable_dump": True, "dump_path": str(dump), "dump_step": "0|5", "dump_mode": "all",
        "op_select_implmode": "high_precision", "deterministic": 1, "session_device_id": 3}.items()})
    changes["npu.extra"] = {"stream_max_parallel_num": "AIcoreEngine:3", "op_wait_timeout": 120,
                            "jit_compile": False, "graph_memory_max_size": 21474836480,
                            "variable_memory_max_size": 10737418240.0, "my_future_key": 7}
    changes["npu.types"] = {"my_future_key": "s"}
    params = _params(backend.session_config(load("npu", **changes)))
    assert dump.is_dir()  # the adapter's CheckPath aborts on a dump_path that does not exist
    assert params["precision_mode"] == b"must_keep_origin_dtype" and params["iterations_per_loop"] == 1
    assert "enable_data_pre_proc" not in params and params["hcom_parallel"] is False  # deprecated: not written
    assert (params["enable_dump"], params["dump_path"], params["dump_step"], params["dump_mode"]) == (
        True, str(dump).encode(), b"0|5", b"all")
    assert params["op_select_implmode"] == b"high_precision"
    assert params["deterministic"] == 1 and params["session_device_id"] == 3
    assert params["stream_max_parallel_num"] == b"AIcoreEngine:3"
    # read with .s() by the adapter: written as strings whatever YAML made of them
    assert params["jit_compile"] == b"false"
    assert params["graph_memory_max_size"] == b"21474836480" and params["variable_memory_max_size"] == b"10737418240"
    assert params["op_wait_timeout"] == 120 and params["my_future_key"] == b"7"
    changes.update({"npu.precision_mode": None, "npu.precision_mode_v2": "origin"})
    params = _params(backend.session_config(load("npu", **changes)))
    assert "precision_mode" not in params and params["precision_mode_v2"] == b"origin"


def test_npu_inference_graph_run_mode():
    assert _params(backend.session_config(load("npu"), training=False))["graph_run_mode"] == 0
    assert _params(backend.session_config(load("npu"), training=True))["graph_run_mode"] == 1
    dev = load("npu", **{"npu.graph_run_mode": 1})
    assert _params(backend.session_config(dev, training=False))["graph_run_mode"] == 1


@pytest.mark.parametrize("changes, words", [
    ({"npu.precision_mode_v2": "origin"}, "not both"),
    ({"npu.precision_mode": "fp64_please"}, "npu.precision_mode"),
    ({"mixed_precision": False}, "loss scaling"),
    ({"npu.enable_dump": True}, "dump_path"),
    ({"npu.enable_dump": True, "npu.enable_dump_debug": True, "npu.dump_path": "/d"}, "cannot both"),
    ({"npu.mix_compile_mode": True, "npu.iterations_per_loop": 10}, "iterations_per_loop"),
    ({"npu.iterations_per_loop": 100}, "iterations_per_loop: must be 1"),
    ({"npu.enable_data_pre_proc": True}, "enable_data_pre_proc: must be false"),
    ({"npu.optypelist_for_implmode": "Pooling"}, "needs op_select_implmode"),
    ({"npu.op_select_implmode": "fastest"}, "op_select_implmode"),
    ({"npu.extra": {"input_shape": "x:1,2"}}, "go together"),
    ({"npu.types": {"foo": "float"}}, "types.foo"),
    ({"npu.profiling_mode": True}, "profiling_options"),
    ({"xla": True}, "device.xla"),
    ({"npu.use_offline": True}, "device.npu.use_offline"),
    ({"name": "tpu"}, "device.name"),
])
def test_npu_bad_settings_are_one_sentence(changes, words):
    with pytest.raises(UserError, match=words) as err:  # at compose time, or (mixed_precision) for training
        backend.session_config(load("npu", **changes))
    assert "\n" not in str(err.value)


@pytest.mark.skipif(HAS_NPU_BRIDGE, reason="npu_bridge is installed here")
def test_npu_without_npu_bridge_says_what_to_install():
    dev = load("npu")
    for call in (lambda: backend.prepare(dev), lambda: backend.wrap_optimizer(tf.train.AdamOptimizer(), dev)):
        with pytest.raises(UserError) as err:
            call()
        assert str(err.value) == backend.NPU_MISSING
    assert "npu_bridge" in backend.NPU_MISSING and "\n" not in backend.NPU_MISSING
    backend.prepare(load("cpu"))  # nothing to import off the npu


@pytest.mark.skipif(HAS_NPU_BRIDGE, reason="npu_bridge is installed here")
def test_npu_error_through_an_entry_point(tmp_path):
    # an entry point built like pwcflow's (cli.entry, conf/ one level up) that prepares the device
    (tmp_path / "conf").symlink_to(ROOT / "conf")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "entry.py").write_text(
        "from pwcflow import cli\nfrom pwcflow.device import backend\n\n\n"
        "def run(cfg):\n    backend.prepare(cfg.device)\n\n\n"
        "cli.entry('predict')(run)()\n")
    proc = subprocess.run([sys.executable, str(tmp_path / "bin" / "entry.py"), "--device=npu", "ckpt=c", "img1=a",
                           "img2=b", "out=o", "hydra.run.dir=%s" % (tmp_path / "out")],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert lines == ["error: " + backend.NPU_MISSING]
    assert "Traceback" not in proc.stderr


def test_npu_loss_scaling_uses_npu_optimizer(fake_npu_bridge):
    dev = load("npu")
    base = tf.train.AdamOptimizer()
    opt = backend.wrap_optimizer(base, dev, distributed=True)
    assert opt is fake_npu_bridge.loss_scaled[-1] and opt.is_distributed is True
    assert isinstance(opt.opt, backend.CountApplied) and opt.opt._opt is base  # counts applied (finite) steps
    assert opt.manager.args == dict(init_loss_scale=2.0 ** 32, incr_every_n_steps=1000, decr_every_n_nan_or_inf=2,
                                    incr_ratio=2.0, decr_ratio=0.5)
    dev = load("npu", mixed_precision=False, **{"npu.precision_mode": "force_fp32"})
    assert backend.wrap_optimizer(base, dev) is base
    backend.prepare(dev)  # imports the (stand-in) adapter without complaint


def test_gpu_cpu_dynamic_loss_scaling_skips_overflow_and_shrinks_the_scale():
    dev = load("cpu")
    base = tf.train.GradientDescentOptimizer(0.5)
    assert backend.wrap_optimizer(base, dev) is base
    dev = load("cpu", mixed_precision=True, **{"loss_scale.init": 1024, "loss_scale.incr_every_n_steps": 2})
    with tf.Graph().as_default():
        w = tf.get_variable("w", [], initializer=tf.ones_initializer())
        factor = tf.placeholder(tf.float32, [])
        opt = backend.wrap_optimizer(tf.train.GradientDescentOptimizer(0.5), dev)
        assert isinstance(opt, tf.train.experimental.MixedPrecisionLossScaleOptimizer)
        train_op = opt.minimize(w * factor)
        scale, applied = backend.step_stats(opt)
        with tf.Session() as sess:
            sess.run([tf.global_variables_initializer(), tf.local_variables_initializer()])
            assert sess.run(scale) == 1024
            sess.run(train_op, {factor: np.inf})  # overflow: no update, scale halves
            assert (sess.run(w), sess.run(scale)) == (1.0, 512)
            sess.run(train_op, {factor: 1.0})
            sess.run(train_op, {factor: 1.0})  # two good steps: scale doubles
            assert np.isclose(sess.run(w), 0.0) and sess.run(scale) == 1024
            assert sess.run(applied) == 2  # three steps, one skipped


@pytest.mark.parametrize("changes, words", [
    ({"loss_scale.init": 0.5}, "loss_scale"),
    ({"loss_scale.decr_ratio": 2}, "loss_scale"),
])
def test_bad_loss_scale(changes, words):
    with pytest.raises(UserError, match=words) as err:  # at compose time
        load("gpu", mixed_precision=True, **changes)
    assert str(err.value).startswith("bad setting device.loss_scale.")


@pytest.mark.parametrize("argv, expected", [
    (["--data_url=obs://b/data", "--train_url=obs://b/out"],
     ["++dataset.root=obs://b/data", "++storage.output_url=obs://b/out"]),
    (["--data_url", "/cache/d", "model=sm-6-2"], ["++dataset.root=/cache/d", "model=sm-6-2"]),
    (["--data_url=s3://b/data/", "--train_url=s3://b/out/"],
     ["++dataset.root=s3://b/data/", "++storage.output_url=s3://b/out/"]),
    # new-style jobs: local paths; the run dir IS train_url (ModelArts uploads it to OBS itself)
    (["--data_url=/home/ma-user/modelarts/inputs/data_url_0/",
      "--train_url=/home/ma-user/modelarts/outputs/train_url_0/"],
     ["++dataset.root=/home/ma-user/modelarts/inputs/data_url_0/",
      "hydra.run.dir=/home/ma-user/modelarts/outputs/train_url_0"]),
    (["--train_url", "/home/ma-user/modelarts/outputs/train_url_0"],
     ["hydra.run.dir=/home/ma-user/modelarts/outputs/train_url_0"]),
    (["--num_gpus=8", "--rank", "0", "--init_method=tcp://x:1", "--world_size=2"], []),
    (["--device=npu", "--device.npu.iterations_per_loop=10", "--train.lr=0.0001"],
     ["device=npu", "device.npu.iterations_per_loop=10", "train.lr=0.0001"]),
    (["--cfg", "job", "--help", "-m", "--config-name=eval", "--info=all"],
     ["--cfg", "job", "--help", "-m", "--config-name=eval", "--info=all"]),
    (["--not-a-key=1", "ckpt=x"], ["--not-a-key=1", "ckpt=x"]),
])
def test_modelarts_argv(argv, expected):
    assert modelarts_argv(["prog"] + argv) == ["prog"] + expected


# The adapter's source: Ascend/tensorflow tf_adapter/util/npu_attrs.cc at commit 085a7b2e.
@pytest.mark.parametrize("key, value, field, expected", [
    ("aoe_mode", 2, "s", b"2"),  # npu_attrs.cc:1893 .s()
    ("op_debug_config", "/x/cfg.ini", "s", b"/x/cfg.ini"),  # :2222 .s()
    ("memory_optimization_policy", "MemoryPriority", "s", b"MemoryPriority"),  # :2234 .s()
    ("variable_placement", "Host", "s", b"Host"),  # :2302 .s()
    ("hccl_timeout", "3600", "i", 3600),  # :2207 .i()
    ("op_wait_timeout", 120, "i", 120),  # :2210 .i()
    ("op_execute_timeout", 90, "i", 90),  # :2213 .i()
    ("graph_exec_timeout", "600000", "i", 600000),  # :2225 .i()
    ("static_memory_policy", 2, "i", 2),  # :2228 .i()
    ("atomic_clean_policy", 1, "i", 1),  # :2231 .i()
])
def test_extra_keys_are_written_with_the_adapters_type(key, value, field, expected):
    cfg = backend.session_config(load("npu", **{"npu.extra": {key: value}}))
    (custom,) = cfg.graph_options.rewrite_options.custom_optimizers
    assert custom.parameter_map[key].WhichOneof("value") == field
    assert getattr(custom.parameter_map[key], field) == expected


@pytest.mark.parametrize("mode", ["high_precision_for_all", "high_performance_for_all"])
def test_op_select_implmode_accepts_the_for_all_modes(mode):
    """CheckOpImplMode's list, npu_attrs.cc:302-303."""
    assert _params(backend.session_config(load("npu", **{"npu.op_select_implmode": mode})))[
        "op_select_implmode"] == mode.encode()
    with pytest.raises(UserError, match="op_select_implmode"):
        load("npu", **{"npu.op_select_implmode": "high_speed"})


def test_modify_mixlist_needs_a_mixed_precision_mode():
    """npu_attrs.cc:2135-2170: modify_mixlist is taken only with a mixed precision_mode(_v2), else an error."""
    assert "modify_mixlist" in _params(backend.session_config(load("npu", **{"npu.modify_mixlist": "/m.json"})))
    with pytest.raises(UserError, match="modify_mixlist.*mixed precision_mode"):
        load("npu", mixed_precision=False, **{"npu.modify_mixlist": "/m.json",
                                              "npu.precision_mode": "must_keep_origin_dtype"})


def test_folders_are_written_with_home_expanded(tmp_path, monkeypatch):
    """The adapter checks the folder text as written (npu_attrs.cc CheckPath): ``~`` must arrive expanded."""
    monkeypatch.setenv("HOME", str(tmp_path))
    params = _params(backend.session_config(load("npu", **{"npu.enable_dump": True, "npu.dump_path": "~/dump"})))
    assert params["dump_path"] == str(tmp_path / "dump").encode() and (tmp_path / "dump").is_dir()


def test_deprecated_switches_are_not_written_by_default():
    """npu_attrs.cc:1886 (op_debug_level -> op_debug_config) and :1957 (enable_data_pre_proc) log them as
    deprecated: the profile leaves both out unless set."""
    params = _params(backend.session_config(load("npu")))
    assert "op_debug_level" not in params and "enable_data_pre_proc" not in params
    assert _params(backend.session_config(load("npu", **{"npu.op_debug_level": 1})))["op_debug_level"] == 1

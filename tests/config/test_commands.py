"""The typed config layer: every config and preset composes and converts; bad values name their key."""

import glob
import os

import pytest
from hydra import compose, initialize_config_dir

from pwcflow.config import commands
from pwcflow.config.compose import CONF_DIR, register_experiments
from pwcflow.errors import UserError

COMMANDS = sorted(commands.SCHEMAS)
PRESETS = register_experiments()  # every experiments/*.yaml, as `experiment=NAME`
REQUIRED = {"train": [], "eval": ["ckpt=x", "dataset.root=/data"], "export": ["ckpt=x"],
            "predict": ["ckpt=x", "img1=a.png", "img2=b.png", "out=o.flo"], "doctor": []}


def _load(name, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return commands.load(name, compose(config_name=name, overrides=REQUIRED[name] + list(overrides)))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_config_converts(name):
    typed = _load(name)
    assert isinstance(typed, commands.SCHEMAS[name])
    assert typed.device.name == "cpu" and isinstance(typed.device, commands.DeviceConfig)
    assert name == "doctor" or typed.model.name in ("lg-6-2", "sm-6-2")


def _preset_command(preset: str) -> str:
    return "eval" if preset.startswith("eval") else "train"


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_converts(preset):
    name = _preset_command(preset)
    extra = ["dataset.root=/data"] if name == "train" else []
    typed = _load(name, "experiment=%s" % preset, *extra)
    assert isinstance(typed, commands.SCHEMAS[name])


@pytest.mark.parametrize("group,option", [(os.path.basename(os.path.dirname(p)), os.path.splitext(
    os.path.basename(p))[0]) for p in sorted(glob.glob(os.path.join(CONF_DIR, "*", "*.yaml")))
    if os.path.basename(os.path.dirname(p)) in ("model", "dataset", "lr_schedule", "device", "storage")])
def test_every_group_option_converts(group, option):
    extra = ["dataset.root=/data"] if group == "dataset" else []
    typed = _load("train", "%s=%s" % (group, option), *extra)
    assert typed is not None


@pytest.mark.parametrize("name,override,needle", [
    ("train", "train.batch_size=abc", "bad setting train.batch_size: must be a positive integer, got abc"),
    ("train", "train.crop=[100,128]", "train.crop: must be [height, width], positive multiples of 64"),
    ("train", "lr_schedule.rates=[1.0,-1.0,1,1,1,1]", "lr_schedule.rates: must all be positive"),
    ("train", "lr_schedule.rates=[1.0]", "lr_schedule.rates: needs 6 entries"),
    ("train", "lr_schedule.boundaries=[5,3,6,7,8]", "lr_schedule.boundaries: must be strictly increasing"),
    ("train", "optimizer.beta1=2", "optimizer.beta1: must be in [0, 1)"),
    ("train", "optimizer.beta2=1.0", "optimizer.beta2: must be in [0, 1)"),
    ("train", "loss.kind=l3", "loss.kind: must be one of"),
    ("train", "resume=maybe", "resume: must be true or false"),
    ("train", "train.keep_checkpoints=0", "train.keep_checkpoints: must be an integer >= 1"),
    ("export", "height=abc", "bad setting height: must be a positive integer, got abc"),
    ("eval", "batch=0", "bad setting batch"),
    ("eval", "split=nope", "bad setting split"),
    ("predict", "max_flow=-3", "bad setting max_flow"),
    ("export", "batch=0", "bad setting batch: must be a positive integer, got 0"),
    ("export", "width=-64", "bad setting width: must be a positive integer, got -64"),
    ("train", "device.intra_op_threads=-1", "bad setting device.intra_op_threads: must be a non-negative integer"),
    ("train", "device.intra_op_threads=many", "bad setting device.intra_op_threads: must be a non-negative"),
    ("train", "device.xla=sometimes", "bad setting device.xla: must be true or false"),
    ("train", "device.precision=fp8", "bad setting device.precision: must be one of fp32, bf16"),
    ("train", "device.loss_scale.incr_ratio=1", "bad setting device.loss_scale.incr_ratio: must be > 1"),
    ("train", "device.distribute.rank=-1", "bad setting device.distribute.rank"),
    ("train", "device=npu +device.npu.use_offline=true", "bad setting device.npu.use_offline: not a known"),
    ("train", "device=npu device.npu.graph_run_mode=two", "bad setting device.npu.graph_run_mode"),
    ("train", "++device.npu.use_off_line=true", "bad setting device.npu: only device=npu has an npu block"),
    ("train", "device=gpu device.allow_growth=null", "add device.allow_growth=true|false"),
    ("predict", "storage.retries=-1", "bad setting storage.retries: must be a non-negative integer"),
    ("predict", "storage.signature=v5", "bad setting storage.signature: must be one of obs, v4, v2"),
    ("predict", "++storage.access_key_id=AK", "storage.access_key_id looks like a credential"),
    ("doctor", "tolerance=-1", "bad setting tolerance"),
])
def test_bad_values_name_their_key(name, override, needle):
    with pytest.raises(UserError) as err:
        _load(name, *override.split())
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cyclic_schedule_and_missing_key():
    typed = _load("train", "lr_schedule=cyclic")
    assert typed.lr_schedule.step_size > 0 and typed.lr_schedule.boundaries is None
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="export")
    with pytest.raises(UserError, match="add ckpt="):
        commands.load("export", cfg)

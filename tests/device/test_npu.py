"""Ascend-facing behaviour checked on any machine: a host-independent export graph with a static ATC command,
one training fetch list, and status lines that ModelZoo's grep/awk extraction reads from a captured log."""

import re

import pytest

from pwcflow import export
from pwcflow.model import tuning
from pwcflow.model.pwcnet import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)


def _op_types(predictor) -> list:
    return [node.op for node in export.freeze(predictor).node]


@pytest.mark.parametrize("split,shared", [(16 << 10, "0"), (0, "1")])
def test_export_graph_has_no_host_conv_splits(monkeypatch, split, shared):
    """Neither host tuning (L2-sized splits on a host with a tiny cache; shared flow/context heads, Eigen's
    choice) reaches the portable export graph."""
    shape = [1, 2, 128, 192, 3]
    monkeypatch.setenv(tuning.SHARED_ENV, shared)
    with tuning.conv_splitting(split):
        tuned = export.build(SM, None, shape)
        portable = export.build_portable(SM, None, shape)
        try:
            assert "SplitV" in _op_types(tuned)  # the setting does split here, so the next line can fail
            types = _op_types(portable)
        finally:
            tuned.close()
            portable.close()
    assert "SplitV" not in types and "Conv2D" in types


def test_atc_command_has_only_static_dims():
    cmd, note = export.atc_command("m.pb", [1, 2, 448, 1024, 3], "m")
    assert '--input_shape="x_tnsr:1,2,448,1024,3"' in cmd and note is None
    cmd, note = export.atc_command("m.pb", [None, 2, 448, None, 3], "m")
    assert '--input_shape="x_tnsr:1,2,448,1024,3"' in cmd and "-1" not in cmd
    assert "batch" in note and "width" in note and "height" not in note


@pytest.mark.slow
def test_every_training_step_fetches_the_same_list(tmp_path, monkeypatch):
    """Two fetch lists would make the Ascend graph compiler build two copies of the training graph."""
    from conftest import ROOT, TINY
    from hydra import compose, initialize_config_dir

    from pwcflow.config import commands
    from pwcflow.tf1 import tf
    from pwcflow.training import trainer as trainer_lib

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=TINY + ["train.iterations=4", "train.image_interval=1",
                                                  "train.save_interval=4", "train.val_interval=4"])
    seen, real = [], tf.Session.run

    def run(self, fetches, *args, **kwargs):
        if isinstance(fetches, (list, tuple)):
            seen.append(tuple(id(f) for f in fetches))
        return real(self, fetches, *args, **kwargs)

    monkeypatch.setattr(tf.Session, "run", run)
    trainer = trainer_lib.Trainer(trainer_lib.prepare(commands.load("train", cfg)), str(tmp_path))
    trainer.run()
    steps = [f for f in seen if id(trainer.g.train_op) in f]
    assert len(steps) == 4 and len(set(steps)) == 1
    images = [v.tag for path in (tmp_path / "tb").iterdir() for event in tf.train.summary_iterator(str(path))
              for v in event.summary.value if v.HasField("image")]
    assert images.count("train/frame1_prediction_groundtruth") == 4  # the pictures still come, every step


def test_overflow_skips_leave_names_stored_step_and_lr_in_agreement(tmp_path, monkeypatch, capsys,
                                                                      fake_npu_bridge):
    """npu_loss_scale_optimizer.py (Ascend/tensorflow 085a7b2e) advances global_step only inside
    ``true_apply_grads_fn`` (lines 83-88, the finite branch of the cond); in INF/NAN mode (line 55-56) contrib's
    LossScaleOptimizer does the same, and older adapters (commit 101c5c16, line 57) passed ``name`` as
    ``global_step`` there, never advancing it. The loop's global_step advances on every step instead. Overflow
    is simulated by the stand-in (tests/support/npu_bridge.py) on steps 2 and 3."""
    from conftest import ROOT, TINY
    from hydra import compose, initialize_config_dir

    from pwcflow.config import commands
    from pwcflow.device import backend
    from pwcflow.tf1 import tf
    from pwcflow.training import trainer as trainer_lib

    for key in ("RANK_SIZE", "RANK_ID", "RANK_TABLE_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(backend, "session_config", lambda dev, engine=None, training=True: tf.ConfigProto())
    fake_npu_bridge.overflow_at.update({2, 3})
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=TINY + [
            "device=npu", "train.iterations=6", "train.save_interval=2", "train.val_interval=6",
            "train.image_interval=100", "lr_schedule.boundaries=[3]", "lr_schedule.rates=[0.001,0.0001]"])
    trainer = trainer_lib.Trainer(trainer_lib.prepare(commands.load("train", cfg)), str(tmp_path))
    trainer.run()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "[Train]:" in ln]
    assert [ln.split()[3] for ln in lines] == ["2", "4", "6"]
    assert [re.search(r"skipped=(\d+)", ln).group(1) for ln in lines] == ["1", "2", "2"]
    assert float(re.search(r"loss_scale=([\d.e+]+)", lines[0]).group(1)) == 2.0 ** 32  # x2, then /2
    assert [ln.split()[9] for ln in lines][0].startswith("sec/step=")  # ModelZoo's field 10 stays in place
    assert "lr=0.000100" in lines[2] and "lr=0.001000" in lines[0]  # the schedule follows the stored step
    for step in (2, 4, 6):  # each checkpoint's name is the step it stores
        reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / ("pwcnet.ckpt-%d" % step)))
        assert reader.get_tensor("global_step") == step
    tags = {v.tag for path in (tmp_path / "tb").iterdir() for event in tf.train.summary_iterator(str(path))
            for v in event.summary.value}
    assert {"train/loss_scale", "train/skipped_steps"} <= tags


def test_atc_command_takes_the_soc_from_the_setting(tmp_path):
    """ATC's --soc_version names the target chip (Ascend310, Ascend310P3, Ascend910...): export's soc_version."""
    from conftest import error_line, run_module

    cmd, _ = export.atc_command("m.pb", [1, 2, 448, 1024, 3], "m", "Ascend310P3")
    assert cmd.endswith("--soc_version=Ascend310P3")
    proc = run_module("pwcflow.export", "ckpt=%s" % tmp_path, "soc_version=Ascend 910", "out=%s" % (tmp_path / "o"))
    assert "soc_version" in error_line(proc) and not (tmp_path / "o").exists()

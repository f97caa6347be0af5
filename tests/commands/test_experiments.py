"""Experiment presets: they match the seed's table, they run end to end, and the results collector reads them."""

import json

import pytest
from conftest import ROOT, run_module
from hydra import compose, initialize_config_dir
from support.layouts import make_sintel

from pwcflow import results
from pwcflow.config.compose import register_experiments

TRAIN_PRESETS = {  # preset -> seed table row
    "pretrain_chairsthingsmix": "pretrained model",
    "sintel_clean_finetune_gpu": "Reproduce on GPU",
    "sintel_clean_finetune_npu": "Reproduce on Ascend 910",
}
DEVICES = {"pretrain_chairsthingsmix": "gpu", "sintel_clean_finetune_gpu": "gpu", "sintel_clean_finetune_npu": "npu"}
SMOKE = ["dataset=synthetic", "dataset.train_size=8", "dataset.val_size=2", "dataset.size=[64,128]",
         "train.crop=[64,128]", "train.batch_size=1", "train.iterations=2", "train.display_interval=1",
         "train.save_interval=2", "train.val_interval=2", "train.val_pairs=2", "train.train_eval_pairs=1",
         "device=cpu"]


def _compose(config_name, preset):
    register_experiments()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name, overrides=["experiment=%s" % preset])


@pytest.mark.parametrize("preset", sorted(TRAIN_PRESETS))
def test_preset_matches_seed_table(preset):
    cfg = _compose("train", preset)
    row = {r[0]: r for r in results.SEED_TABLE}[TRAIN_PRESETS[preset]]
    _, epe, devices, batch, iterations = row
    assert cfg.seed_row.row == row[0]
    assert cfg.seed_row.expected_epe == pytest.approx(epe)
    assert cfg.seed_row.devices == devices and cfg.train.batch_size * devices == batch == cfg.seed_row.global_batch
    assert cfg.train.iterations == iterations
    assert cfg.lr_schedule.name == "multisteps"
    assert list(cfg.lr_schedule.boundaries) == sorted(set(cfg.lr_schedule.boundaries))  # no duplicate boundary
    assert len(cfg.lr_schedule.rates) == len(cfg.lr_schedule.boundaries) + 1
    assert cfg.device.name == DEVICES[preset]
    assert cfg.model.name == "lg-6-2"
    if preset.startswith("sintel"):
        assert cfg.dataset.name == "sintel_clean" and list(cfg.train.crop) == [384, 768]
        assert cfg.loss.kind == "robust" and cfg.optimizer.name == "sgd"  # what the seed really ran
        assert list(cfg.lr_schedule.boundaries) == [40000, 60000, 80000, 100000]
    else:
        assert cfg.dataset.name == "chairsthingsmix" and cfg.loss.kind == "multiscale"
    if preset.endswith("npu"):
        assert cfg.storage.name == "obs"


def test_eval_preset():
    cfg = _compose("eval", "eval_sintel_clean")
    assert cfg.dataset.name == "sintel_clean" and cfg.split == "all" and cfg.model.name == "lg-6-2"
    assert cfg.seed_row.expected_epe == pytest.approx(2.60) and cfg.seed_row.finetuned_epe == pytest.approx(1.76)


@pytest.mark.slow
def test_presets_run_end_to_end_and_are_collected(tmp_path):
    """Pre-train -> fine-tune (GPU and NPU recipes on the CPU) -> eval -> results table, all tiny."""
    pre = run_module("pwcflow.train", "experiment=pretrain_chairsthingsmix", *SMOKE, cwd=tmp_path)
    assert pre.returncode == 0, pre.stderr[-3000:]
    pre_dir = tmp_path / "outputs" / "train" / "pretrain_chairsthingsmix"
    for preset in ("sintel_clean_finetune_gpu", "sintel_clean_finetune_npu"):
        extra = ["storage=local"] if preset.endswith("npu") else []
        ft = run_module("pwcflow.train", "experiment=%s" % preset, *SMOKE, *extra, "init_ckpt=%s" % pre_dir,
                        cwd=tmp_path)
        assert ft.returncode == 0, ft.stderr[-3000:]
        assert "initialised weights from" in ft.stderr + ft.stdout
    sintel = make_sintel(tmp_path / "Sintel", scenes=("alley_1",), frames=3, size=(64, 128), passes=("clean",))
    ev = run_module("pwcflow.eval", "experiment=eval_sintel_clean", "dataset.root=%s" % sintel,
                    "ckpt=%s" % (tmp_path / "outputs" / "train" / "sintel_clean_finetune"), "hydra.run.dir=outputs/ev",
                    cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert json.loads((tmp_path / "outputs" / "ev" / "metrics.json").read_text())["pairs"] == 2
    rows = results.collect([str(tmp_path / "outputs")], str(tmp_path / "report"))
    by_run = {r["run"].split("/")[-1]: r for r in rows}
    assert by_run["sintel_clean_finetune"]["seed_epe"] == pytest.approx(1.76)
    assert by_run["pretrain_chairsthingsmix"]["seed_epe"] == pytest.approx(2.60)
    assert by_run["ev"]["kind"] == "eval" and by_run["ev"]["epe"] > 0
    table = (tmp_path / "report" / "results.md").read_text()
    assert "Reproduce on Ascend 910" in table and "sintel_clean_finetune_npu" in table
    assert (tmp_path / "report" / "val_epe.png").stat().st_size > 1000
    assert (tmp_path / "report" / "results.csv").read_text().count("\n") == len(rows) + 1

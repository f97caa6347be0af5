"""The ``dataset`` config group converted and validated (``data/spec.py``): every option composes, bad keys and types
are named."""

import pytest
from conftest import ROOT
from omegaconf import OmegaConf
from support.dataset_checks import spec_for

from pwcflow.data.datasets import DatasetSpec, build, spec_from_config
from pwcflow.errors import UserError

CONFIGS = ("synthetic", "flyingchairs", "flyingthings3d", "chairsthingsmix", "sintel_clean", "sintel_final", "sintel",
           "sintel_test", "kitti2015")


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_composes_and_validates(name):
    spec = spec_for(name, None if name == "synthetic" else "/somewhere")
    assert spec.name == name and spec.augment.mode in ("basic", "heavy")
    assert len(spec.crop) == 2 and all(v % 64 == 0 for v in spec.crop)
    raw = OmegaConf.to_container(OmegaConf.load(str(ROOT / "conf" / "dataset" / (name + ".yaml"))))
    assert not {"values", "keys", "items"} & set(raw)


def test_real_data_sets_need_a_root():
    with pytest.raises(UserError, match="dataset.root"):
        spec_for("sintel_clean")


@pytest.mark.parametrize("override, key", [
    ("dataset.kind=imagenet", "dataset.kind"),
    ("dataset.passes=[albedo]", "dataset.passes"),
    ("dataset.crop=[256]", "dataset.crop"),
    ("dataset.eval_split=holdout", "dataset.eval_split"),
    ("+dataset.colour=1", "dataset.colour"),
    ("dataset.augment.mode=wild", "dataset.augment.mode"),
    ("dataset.augment.fliplr=2", "dataset.augment.fliplr"),
    ("dataset.augment.scale=[0.5]", "dataset.augment.scale"),
    ("+dataset.augment.rotate=5", "dataset.augment.rotate"),
])
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        spec_for("sintel_clean", "/x", override)


def test_bad_split_and_spec_from_plain_mapping():
    spec = spec_from_config({"name": "s", "kind": "synthetic", "train_size": 2, "val_size": 1})
    assert isinstance(spec, DatasetSpec) and len(build(spec, "train")) == 2
    with pytest.raises(UserError, match="unknown split 'validation'"):
        build(spec, "validation")


@pytest.mark.parametrize("override, key", [
    ("+dataset.scale=half", "dataset.scale"),
    ("+dataset.train_size=2.5", "dataset.train_size"),
    ("dataset.crop=[a,b]", "dataset.crop"),
    ("dataset.passes=clean", "dataset.passes"),
    ("dataset.augment.translate=[x,0.05]", "dataset.augment.translate"),
])
def test_wrong_types_name_the_key(override, key):
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        spec_for("sintel_clean", "/x", override)

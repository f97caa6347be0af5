"""``python -m pwcflow.models``: the registry's models listed, with which are in the local cache."""

import json

import yaml
from conftest import error_line, run_module


def test_lists_shipped_models_and_their_cache_state(tmp_path):
    proc = run_module("pwcflow.models", "--cache-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    for needle in ("pwcnet-lg-6-2-chairsthingsmix", "obs://pwcnet-final/pretrained/pwcnet.ckpt-595000",
                   "sintel_clean_train 2.60", "pwcnet-lg-6-2-sintelclean-ascend", "sintel_clean_train 1.76",
                   "tfoptflow-sm-6-2-multisteps-chairsthingsmix", "http://bit.ly/tfoptflow"):
        assert needle in out, needle
    assert "cached:" not in out and out.count("not cached") == 5


def test_cached_model_is_marked(tmp_path):
    """A model whose record and files are in the cache is listed as cached (sizes must match the record)."""
    folder = tmp_path / "cache" / "obs" / "b" / "m"
    folder.mkdir(parents=True)
    (folder / "pwcnet.ckpt-1.index").write_bytes(b"i" * 10)
    (folder / "pwcnet.ckpt-1.data-00000-of-00001").write_bytes(b"d" * 20)
    registry = tmp_path / "models.yaml"
    registry.write_text(yaml.safe_dump({"models": {"mine": {"variant": "sm-6-2", "origin": "obs://bkt/m/pwcnet.ckpt-1",
                                                            "epe": {"sintel_clean_train": 3.5}}}}))
    record = {"origin": "obs://bkt/m/pwcnet.ckpt-1", "prefix": str(folder / "pwcnet.ckpt-1"),
              "files": {"pwcnet.ckpt-1.index": 10, "pwcnet.ckpt-1.data-00000-of-00001": 20}}
    (tmp_path / "cache" / "models").mkdir()
    (tmp_path / "cache" / "models" / "mine.json").write_text(json.dumps(record))
    env = {"PWCFLOW_MODELS": str(registry)}
    proc = run_module("pwcflow.models", "--cache-dir=%s" % (tmp_path / "cache"), env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| mine | sm-6-2 | sintel_clean_train 3.50 | obs://bkt/m/pwcnet.ckpt-1 | cached: %s |" % record["prefix"] \
        in proc.stdout
    (folder / "pwcnet.ckpt-1.data-00000-of-00001").write_bytes(b"d" * 5)  # truncated: no longer counts
    assert "| not cached |" in run_module("pwcflow.models", "--cache-dir=%s" % (tmp_path / "cache"), env=env).stdout


def test_bad_option_and_bad_registry_one_line(tmp_path):
    assert "bad setting --nope" in error_line(run_module("pwcflow.models", "--nope"))
    bad = tmp_path / "models.yaml"
    bad.write_text("models: {x: {variant: sm-6-2}}\n")
    line = error_line(run_module("pwcflow.models", env={"PWCFLOW_MODELS": str(bad)}))
    assert str(bad) in line and "needs origin" in line

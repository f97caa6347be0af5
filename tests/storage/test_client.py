"""The OBS client from the ``storage`` config group (``storage/client.py``): local no-op, credentials only from the
environment, endpoint resolution."""

import os

import pytest
from support.obs_fixtures import (
    ROOT,
    obs_cfg,
)
from support.s3server import S3Server

from pwcflow.config.compose import compose_group
from pwcflow.errors import UserError
from pwcflow.storage import client
from pwcflow.storage.cache import localize
from pwcflow.storage.client import from_config


def _storage_group(option: str):
    """``cfg.storage`` as Hydra composes it (``local.yaml`` extends ``obs.yaml``)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("predict", overrides=["storage=%s" % option]).storage


def test_local_storage_is_a_no_op(tmp_path):
    cfg = compose_group("storage", "local")
    assert from_config(cfg) is None
    assert localize(str(tmp_path), cfg, "dataset") == str(tmp_path)
    assert localize("relative/ckpt", cfg, "checkpoint") == "relative/ckpt"
    with pytest.raises(ValueError):
        localize("obs://b/x", cfg, "bogus")


def test_config_group_keys():
    local, obs = _storage_group("local"), _storage_group("obs")
    assert set(local.keys()) == set(obs.keys())
    assert {"name", "output_url", "cache_dir", "endpoint", "region", "path_style", "signature", "retries",
            "backoff_s"} <= set(obs.keys())
    assert (local.name, obs.name) == ("local", "obs") and obs.output_url is None
    assert not any(word in str(k).lower() for k in obs.keys() for word in ("secret", "access_key", "token"))


def test_missing_credentials_anonymous_reads_no_writes(monkeypatch, tmp_path):
    """Without keys the client is anonymous (public-read buckets; tests/storage/test_anonymous.py reads one);
    a write is refused in one line naming the variables, and so is half a key pair."""
    for var in ("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY", "OBS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    cfg = compose_group("storage", "obs", {"endpoint": "http://127.0.0.1:9"})
    store = from_config(cfg)
    (tmp_path / "f").write_bytes(b"x")
    try:
        assert store.anonymous
        with pytest.raises(UserError) as err:
            store.upload(str(tmp_path / "f"), "bkt", "f")
        assert "OBS credentials missing" in str(err.value)
    finally:
        store.close()
    monkeypatch.setenv("OBS_ACCESS_KEY_ID", "k")
    with pytest.raises(UserError) as err2:
        from_config(cfg)
    for msg in (str(err.value), str(err2.value)):
        assert "OBS_ACCESS_KEY_ID" in msg and "OBS_SECRET_ACCESS_KEY" in msg and "\n" not in msg


def test_endpoint_from_config_env_or_region(monkeypatch, tmp_path):
    monkeypatch.setenv("OBS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", "s")
    monkeypatch.delenv("OBS_ENDPOINT", raising=False)
    cfg = compose_group("storage", "obs")
    with pytest.raises(UserError, match="no OBS endpoint: set storage.endpoint=.*OBS_ENDPOINT"):
        from_config(cfg)
    cfg = compose_group("storage", "obs", {"region": "cn-north-4"})
    assert from_config(cfg).endpoint == "https://obs.cn-north-4.myhuaweicloud.com"
    monkeypatch.setenv("OBS_ENDPOINT", "https://obs.example.test")
    assert from_config(cfg).endpoint == "https://obs.example.test"
    cfg = compose_group("storage", "obs", {"region": "cn-north-4", "endpoint": "http://127.0.0.1:1"})
    assert from_config(cfg).endpoint == "http://127.0.0.1:1"
    monkeypatch.setenv("HOME", "/home/pwcflow-test")  # ~/.cache/pwcflow, unless ModelArts' /cache is writable here
    modelarts = os.path.isdir("/cache") and os.access("/cache", os.W_OK)
    assert client.default_cache_dir() == ("/cache/pwcflow" if modelarts else "/home/pwcflow-test/.cache/pwcflow")


def test_credentials_in_config_are_refused(monkeypatch):
    with pytest.raises(UserError, match="storage.secret_access_key looks like a credential"):  # at compose time
        compose_group("storage", "obs", {"endpoint": "http://127.0.0.1:9", "secret_access_key": "x"})


def test_the_tests_use_the_shipped_obs_settings(tmp_path):
    shipped = compose_group("storage", "obs")
    assert (shipped.signature, shipped.path_style, shipped.region) == ("obs", False, None)
    used = obs_cfg(S3Server("moto", tmp_path), tmp_path)  # not started: only its URL is used
    assert (used.signature, used.path_style, used.region) == (shipped.signature, shipped.path_style, shipped.region)

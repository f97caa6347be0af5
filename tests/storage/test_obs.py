"""Storage layer against a REAL S3-compatible server on 127.0.0.1 (s3rver from npm, or moto_server from PyPI).

The server runs as a subprocess started and stopped by the fixtures (see ``s3server.py``); the code under
test talks to it through Huawei's ``esdk-obs-python`` exactly as it would talk to OBS.
"""

import logging
from pathlib import Path

import pytest
from support.obs_fixtures import (
    BACKEND,
    BUCKET,
    ROOT,
    fake_run_dir,
    needs_server,
    obs_cfg,
    seed,
)

from pwcflow.config import commands
from pwcflow.errors import UserError
from pwcflow.storage.cache import localize
from pwcflow.storage.client import from_config
from pwcflow.storage.obs import is_remote, parse_obs_uri
from pwcflow.storage.runsync import RunSync


# -- no server needed ------------------------------------------------------------------------------------
def test_uri_parsing():
    assert is_remote("obs://b/x") and is_remote("s3://b/x") and is_remote("OBS://b") and is_remote("obs:/b")
    assert not is_remote("/data/sintel") and not is_remote("relative/obs://x") and not is_remote("")
    assert parse_obs_uri("obs://my-bucket/data/sintel/") == ("my-bucket", "data/sintel/")
    assert parse_obs_uri("s3://my.bucket") == ("my.bucket", "")
    for bad in ("obs://", "obs:///key", "obs:/bucket/key", "obs://Bad_Bucket/x", "obs://ab/x", "obs://b//x"):
        with pytest.raises(UserError) as err:
            parse_obs_uri(bad)
        msg = str(err.value)
        assert "malformed OBS URI" in msg and repr(bad) in msg and "\n" not in msg


# -- against the server ----------------------------------------------------------------------------------
@needs_server
def test_unknown_bucket_and_bad_uri(server, secret, tmp_path):
    cfg = obs_cfg(server, tmp_path)
    store = from_config(cfg)
    try:
        for call in (lambda: localize("obs://no-such-bucket/data", cfg, "dataset"),
                     lambda: localize("obs://no-such-bucket/run/ckpt-5", cfg, "checkpoint"),
                     lambda: localize("obs://no-such-bucket/a.png", cfg, "file"),
                     lambda: RunSync("obs://no-such-bucket/run", str(tmp_path), store)):
            with pytest.raises(UserError) as err:
                call()
            msg = str(err.value)
            assert "'no-such-bucket' does not exist" in msg and "\n" not in msg
        with pytest.raises(UserError, match="malformed OBS URI 'obs://Not_A_Bucket/x'"):
            localize("obs://Not_A_Bucket/x", cfg, "dataset")
        with pytest.raises(UserError, match="nothing found at obs://%s/absent" % BUCKET):
            localize("obs://%s/absent" % BUCKET, cfg, "dataset")
        with pytest.raises(UserError, match="no checkpoint found"):
            localize("obs://%s/absent/pwcnet.ckpt-1" % BUCKET, cfg, "checkpoint")
    finally:
        store.close()


@needs_server
@pytest.mark.skipif(BACKEND != "s3rver", reason="moto_server accepts any access key; s3rver checks it")
def test_wrong_access_key_is_one_clear_error(server, secret, monkeypatch, tmp_path):
    monkeypatch.setenv("OBS_ACCESS_KEY_ID", "NOT-A-KEY")
    with pytest.raises(UserError) as err:
        localize("obs://%s/data" % BUCKET, obs_cfg(server, tmp_path), "dataset")
    assert "denied access" in str(err.value) and "OBS_ACCESS_KEY_ID" in str(err.value)


@needs_server
@pytest.mark.skipif(BACKEND != "s3rver", reason="moto_server checks no V2 signature (tests/support/s3server.py)")
def test_wrong_secret_is_refused_with_one_line(server, secret, monkeypatch, tmp_path):
    seed(server, {"data/wrong-secret/a.bin": b"abc"})
    assert server.verifies_signatures
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", "not-" + secret)
    with pytest.raises(UserError) as err:
        localize("obs://%s/data/wrong-secret" % BUCKET, obs_cfg(server, tmp_path), "dataset")
    msg = str(err.value)
    assert "denied access" in msg and "SignatureDoesNotMatch" in msg and "OBS_SECRET_ACCESS_KEY" in msg, msg
    assert "\n" not in msg and secret not in msg
    assert not (tmp_path / "cache" / "obs" / BUCKET / "data" / "wrong-secret" / "a.bin").exists()
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", secret)  # the right one still works: the refusal was the secret
    local = localize("obs://%s/data/wrong-secret" % BUCKET, obs_cfg(server, tmp_path), "dataset")
    assert (Path(local) / "a.bin").read_bytes() == b"abc"


@needs_server
def test_secret_never_reaches_run_dir_or_logs(server, secret, tmp_path, caplog, capsys, monkeypatch):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf as OC

    caplog.set_level(logging.DEBUG)
    monkeypatch.chdir(tmp_path)
    overrides = ["storage=obs", "storage.endpoint=%s" % server.url, "storage.backoff_s=0.05",
                 "storage.output_url=obs://%s/runs/secret" % BUCKET, "storage.cache_dir=%s" % (tmp_path / "cache")]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="predict", overrides=overrides)
    run = fake_run_dir(tmp_path / "run")
    (run / ".hydra" / "config.yaml").write_text(OC.to_yaml(cfg, resolve=True))  # as Hydra saves it
    seed(server, {"data/secret-test/a.bin": b"abc"})

    typed = commands.convert(commands.StorageConfig, cfg.storage, "storage.")  # what the commands receive
    store = from_config(typed)
    try:
        print(repr(store))
        localize("obs://%s/data/secret-test" % BUCKET, typed, "dataset")
        sync = RunSync(typed.output_url, str(run), store)
        sync.push()
        sync.pull_latest_checkpoint(str(run / "restored"))
        for call in (lambda: localize("obs://no-such-bucket/x", typed, "dataset"),
                     lambda: localize("obs://%s/nothing-here" % BUCKET, typed, "checkpoint")):
            with pytest.raises(UserError) as err:
                call()
            print(err.value)
    finally:
        store.close()

    out = capsys.readouterr()
    assert secret not in out.out + out.err
    assert secret not in caplog.text
    for folder in (run, tmp_path / "cache"):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    assert secret not in OC.to_yaml(cfg, resolve=True)

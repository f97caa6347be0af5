"""Training with ``storage=obs``: the run is mirrored to a real S3-compatible server and resumes from it."""

import shutil

import pytest
from conftest import TINY, run_module
from support.s3server import choose_backend, running

BACKEND = choose_backend()
pytestmark = pytest.mark.skipif(BACKEND is None, reason="no S3-compatible server (run `make tools`)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running(BACKEND, tmp_path_factory.mktemp("s3")) as srv:
        yield srv


def _keys(server, bucket, prefix):
    client, out, marker = server.client(), [], None
    try:
        while True:
            resp = client.listObjects(bucket, prefix=prefix, marker=marker)
            assert resp.status < 300
            out += [obj.key for obj in resp.body.contents]
            if not resp.body.is_truncated:
                return out
            marker = out[-1]
    finally:
        client.close()


@pytest.mark.slow
def test_train_mirrors_to_obs_and_resumes_from_it(server, tmp_path):
    secret = server.secret  # the server's own key pair: it refuses any other secret
    env = {"OBS_ACCESS_KEY_ID": server.access_key, "OBS_SECRET_ACCESS_KEY": secret}
    common = TINY + ["storage=obs", "storage.output_url=obs://runs/exp1", "storage.endpoint=%s" % server.url,
                     "storage.cache_dir=%s" % (tmp_path / "cache"), "train.save_interval=2", "train.val_interval=2",
                     "run_name=obsrun"]
    first = run_module("pwcflow.train", *common, "train.iterations=4", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    keys = _keys(server, "runs", "exp1/")
    assert "exp1/checkpoints/checkpoint" in keys and "exp1/metrics.json" in keys
    assert any(k.startswith("exp1/checkpoints/pwcnet.ckpt-4.") for k in keys)
    shutil.rmtree(str(tmp_path / "outputs"))  # the local disk is only a cache on ModelArts
    second = run_module("pwcflow.train", *common, "train.iterations=6", cwd=tmp_path, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    train_lines = [ln for ln in second.stdout.splitlines() if "[Train]:" in ln]
    assert train_lines and train_lines[0].split()[3] == "6"
    run = tmp_path / "outputs" / "train" / "obsrun"
    for path in run.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in first.stdout + first.stderr + second.stdout + second.stderr

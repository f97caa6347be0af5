"""``ckpt=obs://...`` and ``ckpt=s3://...`` in predict: fetched from a real local S3 server, same flow as local."""

import os

import pytest
from conftest import run_module
from support.s3server import S3Server, choose_backend

from pwcflow.data import flowio
from pwcflow.reference import REF_DIR, parity

BACKEND = choose_backend()
pytestmark = pytest.mark.skipif(BACKEND is None, reason="no S3-compatible server (run `make tools`)")


def _upload(server, bucket, folder, key_prefix):
    client = server.client()
    try:
        for name in sorted(os.listdir(folder)):
            with open(os.path.join(folder, name), "rb") as f:
                resp = client.putContent(bucket, key_prefix + name, f.read())
            assert resp.status < 300, (name, resp.status)
    finally:
        client.close()


@pytest.mark.slow
def test_predict_from_obs_and_s3_checkpoints(tmp_path):
    server = S3Server(BACKEND, tmp_path / "s3").start()
    try:
        server.make_bucket("models")
        prefix = parity.make_checkpoint("sm", str(tmp_path / "local"))
        _upload(server, "models", str(tmp_path / "local"), "sm/run1/")
        env = {"OBS_ACCESS_KEY_ID": server.access_key, "OBS_SECRET_ACCESS_KEY": server.secret}
        common = ["model=sm-6-2", "img1=%s/pair_b_img1.png" % REF_DIR, "img2=%s/pair_b_img2.png" % REF_DIR,
                  "storage.endpoint=%s" % server.url, "storage.cache_dir=%s" % (tmp_path / "cache")]
        flows = {}
        for name, ckpt in (("local", prefix), ("obs", "obs://models/sm/run1/pwcnet.ckpt"),
                           ("s3", "s3://models/sm/run1")):  # a prefix, and a directory with a checkpoint file
            out = tmp_path / ("%s.flo" % name)
            proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "out=%s" % out, *common, cwd=tmp_path, env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            flows[name] = flowio.read_flo(str(out))
    finally:
        server.stop()
    assert (tmp_path / "cache" / "obs" / "models" / "sm" / "run1" / "pwcnet.ckpt.index").exists()
    assert abs(flows["local"]).max() > 1.0
    assert (flows["obs"] == flows["local"]).all() and (flows["s3"] == flows["local"]).all()

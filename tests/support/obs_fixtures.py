"""The real S3-compatible server on 127.0.0.1 for the storage tests, and what they put into and read from it.

``tests/conftest.py`` imports the fixtures, so the ``server`` and ``secret`` fixtures reach every
test (a module with its own ``server`` fixture keeps it); the helpers are imported by name.
"""

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.s3server import S3Server, choose_backend

from pwcflow.config.compose import compose_group

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "pwcflow-test"
BACKEND = choose_backend()
needs_server = pytest.mark.skipif(BACKEND is None, reason="no S3-compatible server: run `make tools` (npm s3rver) "
                                  "or install moto[server] (the dev extra)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the module, with bucket ``pwcflow-test``."""
    srv = S3Server(BACKEND, tmp_path_factory.mktemp("s3server")).start()
    try:
        srv.make_bucket(BUCKET)
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def secret(monkeypatch, server) -> str:
    """Credentials in the environment only: the server's own key pair (its secret is unique, so it can be
    searched for afterwards, and the server refuses any other: ``s3server`` module docstring)."""
    monkeypatch.setenv("OBS_ACCESS_KEY_ID", server.access_key)
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", server.secret)
    monkeypatch.delenv("OBS_SECURITY_TOKEN", raising=False)
    monkeypatch.delenv("OBS_ENDPOINT", raising=False)
    return server.secret


def obs_cfg(server, tmp_path, **extra):
    """conf/storage/obs.yaml as shipped (signature ``obs``, virtual-host addressing, no region: typed by the
    config loader) with the test server's endpoint, a small backoff and a cache in ``tmp_path``."""
    return compose_group("storage", "obs", dict({
        "endpoint": server.url, "retries": 4, "backoff_s": 0.05, "workers": 4, "cache_dir": str(tmp_path / "cache")},
        **extra))


def seed(server, files):
    """Put ``{key: bytes}`` into the test bucket with the raw SDK (in parallel)."""
    client = server.client()

    def put(item):
        resp = client.putContent(BUCKET, item[0], item[1])
        assert resp.status < 300, (item[0], resp.status, resp.errorCode)

    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, files.items()))
    finally:
        client.close()


def remote_objects(server, prefix):
    """``{key: md5}`` of the bucket's objects under ``prefix`` (paged by the raw SDK)."""
    client, out, marker = server.client(), {}, None
    try:
        while True:
            resp = client.listObjects(BUCKET, prefix=prefix, marker=marker)
            assert resp.status < 300
            for obj in resp.body.contents:
                assert obj.key not in out, "duplicate key %s" % obj.key
                out[obj.key] = obj.etag.strip('"')
            if not resp.body.is_truncated:
                return out
            marker = resp.body.contents[-1].key
    finally:
        client.close()


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def fake_run_dir(root: Path) -> Path:
    """A run dir shaped like the runner's: composed config, events, metrics, two checkpoints, a temp dir."""
    files = {
        ".hydra/config.yaml": b"storage:\n  name: obs\n",
        "events.out.tfevents.1.host": os.urandom(3000),
        "metrics.jsonl": b'{"step": 100, "epe": 3.2}\n',
        "checkpoints/pwcnet.ckpt-100.data-00000-of-00001": os.urandom(5000),
        "checkpoints/pwcnet.ckpt-100.index": os.urandom(300),
        "checkpoints/pwcnet.ckpt-200.data-00000-of-00001": os.urandom(5000),
        "checkpoints/pwcnet.ckpt-200.index": os.urandom(300),
        "checkpoints/checkpoint": b'model_checkpoint_path: "pwcnet.ckpt-200"\n',
        "checkpoints/.tmp-abc/pwcnet.ckpt-300.index": b"half written",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()

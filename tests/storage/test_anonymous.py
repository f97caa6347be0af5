"""Anonymous reads of public-read buckets and models by name, on a REAL S3-compatible server (moto_server).

moto enforces object ACLs for unsigned requests (a private object answers 403, a public-read one 200), which
s3rver does not, so this module always runs moto. The registry (``PWCFLOW_MODELS``) points at the server.
"""

import hashlib
import re
from pathlib import Path

import pytest
import yaml
from support.s3server import S3Server, find_moto

from pwcflow.config.compose import compose_group
from pwcflow.errors import UserError
from pwcflow.storage import cache, registry
from pwcflow.storage.cache import localize

PUBLIC, PRIVATE = "pub-models", "priv-data"
PREFIX = "models/tiny/pwcnet.ckpt-7"
needs_moto = pytest.mark.skipif(find_moto() is None, reason="moto_server not installed (the dev extra)")
pytestmark = needs_moto


def tiny_checkpoint(folder: Path) -> str:
    """A real (small) TensorFlow checkpoint: what the cache verifies after a download."""
    from pwcflow.tf1 import tf

    graph = tf.Graph()
    with graph.as_default():
        tf.get_variable("w", initializer=tf.constant([[1.0, 2.0], [3.0, 4.0]]))
        saver = tf.train.Saver()
        with tf.Session(graph=graph) as sess:
            sess.run(tf.global_variables_initializer())
            return saver.save(sess, str(folder / "pwcnet.ckpt"), global_step=7, write_meta_graph=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """moto with a public-read checkpoint and big object in ``pub-models`` and a private object in ``priv-data``."""
    work = tmp_path_factory.mktemp("anon")
    srv = S3Server("moto", work).start()
    try:
        srv.make_bucket(PUBLIC)
        srv.make_bucket(PRIVATE)
        prefix = tiny_checkpoint(work)
        files = {PREFIX + p[len(prefix):]: Path(p).read_bytes() for p in map(str, work.glob("pwcnet.ckpt-7.*"))}
        files["data/big.bin"] = bytes(range(256)) * 12288  # 3 MiB
        client = srv.client()
        try:
            for key, data in files.items():
                assert client.putContent(PUBLIC, key, data).status < 300
                assert client.setObjectAcl(PUBLIC, key, aclControl="public-read").status < 300
            assert client.putContent(PRIVATE, "secret.bin", b"private bytes").status < 300
        finally:
            client.close()
        srv.files = files
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def anonymous(monkeypatch):
    for var in ("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY", "OBS_SECURITY_TOKEN", "OBS_ENDPOINT", "S3_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)


def storage(server, tmp_path, **extra):
    return compose_group("storage", "obs", dict({
        "endpoint": server.url, "region": "us-east-1", "path_style": True, "signature": "v4", "retries": 1,
        "backoff_s": 0.01, "workers": 2, "cache_dir": str(tmp_path / "cache")}, **extra))


def write_registry(tmp_path, monkeypatch, server_url: str, **entry) -> None:
    """A registry with one model, ``tiny``, on the test server (what PWCFLOW_MODELS is for)."""
    model = dict({"variant": "sm-6-2", "trained_on": "nothing (a test)", "epe": {"sintel_clean_train": 9.9},
                  "origin": "obs://%s/%s" % (PUBLIC, PREFIX), "page": "http://127.0.0.1/", "endpoint": server_url,
                  "region": "us-east-1", "path_style": True, "signature": "v4"}, **entry)
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump({"models": {"tiny": model}}))
    monkeypatch.setenv(registry.ENV_REGISTRY, str(path))


def gets(server, key: str, status: str = r"20\d") -> int:
    """GET requests for ``key`` in the server's log with an HTTP status matching ``status``."""
    log = re.sub(r"\x1b\[[0-9;]*m", "", server.log())  # werkzeug colours some lines
    return len(re.findall(r'"GET /%s/%s(?:\?\S*)? HTTP/1\.1" %s' % (PUBLIC, re.escape(key), status), log))


def test_public_bucket_read_without_credentials(server, anonymous, tmp_path):
    local = localize("obs://%s/data/big.bin" % PUBLIC, storage(server, tmp_path), "file")
    assert Path(local).read_bytes() == server.files["data/big.bin"]


def test_private_bucket_refused_in_one_line(server, anonymous, tmp_path):
    with pytest.raises(UserError) as err:
        localize("obs://%s/secret.bin" % PRIVATE, storage(server, tmp_path), "file")
    msg = str(err.value)
    assert "anonymous" in msg and "not public-read" in msg and PRIVATE in msg and "\n" not in msg
    assert "OBS_ACCESS_KEY_ID" in msg and not (tmp_path / "cache" / "obs" / PRIVATE / "secret.bin").exists()


def test_named_model_downloaded_once_verified_reused_offline(server, anonymous, tmp_path, monkeypatch):
    index = PREFIX + ".index"
    write_registry(tmp_path, monkeypatch, server.url,
                   sha256={"pwcnet.ckpt-7.index": hashlib.sha256(server.files[index]).hexdigest()})
    cfg = storage(server, tmp_path, endpoint=None, region=None)  # the registry entry names the endpoint
    before = gets(server, index)
    prefix = localize("tiny", cfg, "checkpoint")
    assert prefix == cache.local_path(str(tmp_path / "cache"), PUBLIC, PREFIX)
    for key, data in server.files.items():
        if key.startswith(PREFIX):
            assert Path(cache.local_path(str(tmp_path / "cache"), PUBLIC, key)).read_bytes() == data
    assert gets(server, index) == before + 1
    assert (tmp_path / "cache" / "models" / "tiny.json").exists()
    assert localize("tiny", cfg, "checkpoint") == prefix and gets(server, index) == before + 1  # no refetch
    assert registry.cached(registry.load()["tiny"], str(tmp_path / "cache")) == prefix


def test_model_offline_and_damaged(server, anonymous, tmp_path, monkeypatch):
    """Cached: found with the server stopped; not cached: one line; a wrong recorded SHA-256: refused, removed."""
    write_registry(tmp_path, monkeypatch, server.url, sha256={"pwcnet.ckpt-7.index": "0" * 64})
    cfg = storage(server, tmp_path)
    with pytest.raises(UserError) as err:
        localize("tiny", cfg, "checkpoint")
    assert "SHA-256" in str(err.value) and "\n" not in str(err.value)
    assert not Path(cache.local_path(str(tmp_path / "cache"), PUBLIC, PREFIX + ".index")).exists()
    write_registry(tmp_path, monkeypatch, server.url)
    prefix = localize("tiny", cfg, "checkpoint")
    from support.s3server import free_port

    dead = "http://127.0.0.1:%d" % free_port()  # a closed port: what an offline machine sees
    write_registry(tmp_path, monkeypatch, dead)
    assert localize("tiny", cfg, "checkpoint") == prefix  # reused from the cache, the endpoint never asked
    with pytest.raises(UserError) as err:
        localize("tiny", storage(server, tmp_path / "empty"), "checkpoint")
    msg = str(err.value)
    assert msg.startswith("model tiny not downloaded from %s" % dead) and "\n" not in msg


def test_interrupted_download_resumed(server, anonymous, tmp_path):
    data = server.files["data/big.bin"]
    local = cache.local_path(str(tmp_path / "cache"), PUBLIC, "data/big.bin")
    Path(local).parent.mkdir(parents=True)
    Path(local + ".partial").write_bytes(data[:1000000])  # what an interrupted download leaves behind
    before = gets(server, "data/big.bin", "206")
    assert localize("obs://%s/data/big.bin" % PUBLIC, storage(server, tmp_path), "file") == local
    assert Path(local).read_bytes() == data and not Path(local + ".partial").exists()
    assert gets(server, "data/big.bin", "206") == before + 1  # continued with a Range GET, not refetched


def test_unknown_region_asked_in_one_line(anonymous, tmp_path, monkeypatch):
    write_registry(tmp_path, monkeypatch, None, region=None)
    with pytest.raises(UserError) as err:
        localize("tiny", compose_group("storage", "obs", {"cache_dir": str(tmp_path)}), "checkpoint")
    msg = str(err.value)
    assert "region of OBS bucket %r is not published" % PUBLIC in msg and "storage.region=" in msg
    assert "\n" not in msg

"""Storage layer against a REAL S3-compatible server on 127.0.0.1 (s3rver from npm, or moto_server from PyPI).

The server runs as a subprocess started and stopped by the fixtures (see ``s3server.py``); the code under
test talks to it through Huawei's ``esdk-obs-python`` exactly as it would talk to OBS.
"""

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.s3server import S3Server, choose_backend

from pwcflow.config import commands
from pwcflow.config.compose import compose_group
from pwcflow.errors import UserError
from pwcflow.storage import client, runsync
from pwcflow.storage.cache import localize
from pwcflow.storage.client import from_config
from pwcflow.storage.obs import is_remote, parse_obs_uri
from pwcflow.storage.runsync import RunSync

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


def test_unreachable_endpoint_gives_up_with_one_line(monkeypatch, tmp_path):
    from support.s3server import free_port

    monkeypatch.setenv("OBS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", "s")
    cfg = compose_group("storage", "obs", {"endpoint": "http://127.0.0.1:%d" % free_port(), "retries": 2,
                                           "backoff_s": 0.01, "cache_dir": str(tmp_path)})
    with pytest.raises(UserError) as err:
        localize("obs://bkt/data", cfg, "dataset")
    assert "failed after 3 tries" in str(err.value) and "\n" not in str(err.value)


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


def test_the_tests_use_the_shipped_obs_settings(tmp_path):
    shipped = compose_group("storage", "obs")
    assert (shipped.signature, shipped.path_style, shipped.region) == ("obs", False, None)
    used = obs_cfg(S3Server("moto", tmp_path), tmp_path)  # not started: only its URL is used
    assert (used.signature, used.path_style, used.region) == (shipped.signature, shipped.path_style, shipped.region)


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
def test_sync_in_dataset_tree_once(server, secret, tmp_path, caplog, monkeypatch):
    tree = {"sintel/training/clean/alley_1/frame_%04d.png" % i: os.urandom(700 + i) for i in range(1, 6)}
    tree.update({"sintel/training/flow/alley_1/frame_0001.flo": os.urandom(2048), "sintel/README": b"",
                 "sintel/training/": b""})  # a zero-byte "folder" object, as the OBS console creates
    seed(server, {"datasets/" + k: v for k, v in tree.items()})
    cfg = obs_cfg(server, tmp_path, endpoint=None)
    monkeypatch.setenv("OBS_ENDPOINT", server.url)  # the endpoint may come from the environment

    local = localize("obs://%s/datasets/sintel/" % BUCKET, cfg, "dataset")
    assert local == str(tmp_path / "cache" / "obs" / BUCKET / "datasets" / "sintel")
    for key, data in tree.items():
        if not key.endswith("/"):
            assert (Path(local).parent / key).read_bytes() == data
    assert not list(Path(local).rglob(".tmp-*"))

    # again: nothing is downloaded (same size + ETag), the files are untouched
    mtimes = {p: p.stat().st_mtime_ns for p in Path(local).rglob("*") if p.is_file()}
    caplog.set_level(logging.INFO, logger="pwcflow")
    assert localize("obs://%s/datasets/sintel" % BUCKET, cfg, "dataset") == local
    assert "7 files already in the cache" in caplog.text
    assert {p: p.stat().st_mtime_ns for p in Path(local).rglob("*") if p.is_file()} == mtimes

    # a changed object (same size) and a locally damaged file are fetched again; nothing else
    changed = "sintel/training/clean/alley_1/frame_0002.png"
    seed(server, {"datasets/" + changed: os.urandom(702)})
    damaged = Path(local) / "training/flow/alley_1/frame_0001.flo"
    damaged.write_bytes(b"x" * 2048)
    caplog.clear()
    localize("obs://%s/datasets/sintel" % BUCKET, cfg, "dataset")
    assert "downloading 2 of 7 files" in caplog.text
    assert md5(damaged) == md5_bytes(tree["sintel/training/flow/alley_1/frame_0001.flo"])
    assert md5(Path(local).parent / changed) == remote_objects(server, "datasets/" + changed)["datasets/" + changed]

    # a single object
    one = localize("obs://%s/datasets/sintel/README" % BUCKET, cfg, "file")
    assert Path(one).is_file() and Path(one).read_bytes() == b""


def md5_bytes(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@needs_server
def test_pagination_past_1000_objects(server, secret, tmp_path):
    n = 1234
    seed(server, {"many/f%05d.txt" % i: b"%d" % i for i in range(n)})
    cfg = obs_cfg(server, tmp_path, workers=8)
    store = from_config(cfg)
    try:
        keys = [o.key for o in store.list(BUCKET, "many/")]
    finally:
        store.close()
    assert len(keys) == n and len(set(keys)) == n and keys == sorted(keys)
    local = Path(localize("obs://%s/many" % BUCKET, cfg, "dataset"))
    assert len(list(local.iterdir())) == n
    assert (local / "f01233.txt").read_bytes() == b"1233"


@needs_server
def test_upload_run_dir(server, secret, tmp_path):
    run = fake_run_dir(tmp_path / "run")
    cfg = obs_cfg(server, tmp_path)
    store = from_config(cfg)
    try:
        sync = RunSync("obs://%s/runs/a" % BUCKET, str(run), store)
        sent = sync.push()
        local = {str(p.relative_to(run)): md5(p) for p in run.rglob("*") if p.is_file() and ".tmp-" not in str(p)}
        assert sorted(sent) == sorted(local)
        assert remote_objects(server, "runs/a/") == {"runs/a/" + k: v for k, v in local.items()}

        # pointer files go last: every data file before any .index, the checkpoint state file after both
        order = [k for k in server.stored_keys(BUCKET) if k.startswith("runs/a/")]
        rank = [runsync._upload_rank(k) for k in order]
        assert rank == sorted(rank), order

        assert sync.push() == []  # nothing changed
        (run / "metrics.jsonl").write_text('{"step": 200, "epe": 2.9}\n')
        assert sync.push() == ["metrics.jsonl"]
        assert sync.push([str(run / "metrics.jsonl"), "checkpoints"]) == []

        # a new process (e.g. after a restart) does not upload what OBS already holds
        again = RunSync("obs://%s/runs/a/" % BUCKET, str(run), store)
        assert again.push() == []

        # a resumed run can fetch earlier files back into its new run dir
        other = RunSync("obs://%s/runs/a" % BUCKET, str(tmp_path / "run-b"), store)
        assert other.pull(["metrics.jsonl", "no-such-file.txt"]) == ["metrics.jsonl"]
        assert (tmp_path / "run-b" / "metrics.jsonl").read_text() == '{"step": 200, "epe": 2.9}\n'
        assert other.push() == []
    finally:
        store.close()


@needs_server
def test_push_checkpoint_order_and_resume(server, secret, tmp_path):
    from pwcflow.files.checkpoint import resolve, save_atomic
    from pwcflow.tf1 import tf

    run = tmp_path / "run1"
    cfg = obs_cfg(server, tmp_path)
    store = from_config(cfg)
    try:
        sync = RunSync("obs://%s/runs/resume" % BUCKET, str(run), store)
        assert sync.pull_latest_checkpoint(str(run / "checkpoints")) is None  # nothing there yet
        with tf.Graph().as_default():
            var = tf.get_variable("pwcnet/w", shape=[3], initializer=tf.zeros_initializer())
            saver = tf.train.Saver(max_to_keep=2)
            with tf.Session() as sess:
                sess.run(tf.global_variables_initializer())
                for step in (100, 200):
                    sess.run(var.assign([step, step + 1.0, step + 2.0]))
                    prefix = save_atomic(sess, saver, str(run / "checkpoints"), step)
                    before = len(server.stored_keys(BUCKET))
                    sent = sync.push_checkpoint(prefix)
                    assert sent[-2:] == ["checkpoints/pwcnet.ckpt-%d.index" % step, "checkpoints/checkpoint"]
                    assert server.stored_keys(BUCKET)[before:][-2:] == [
                        "runs/resume/checkpoints/pwcnet.ckpt-%d.index" % step, "runs/resume/checkpoints/checkpoint"]

        # a newer checkpoint whose upload was cut before its .index: not complete, so not used
        seed(server, {"runs/resume/checkpoints/pwcnet.ckpt-300.data-00000-of-00001": b"partial"})

        run2 = tmp_path / "run2"
        sync2 = RunSync("obs://%s/runs/resume" % BUCKET, str(run2), store)
        got = sync2.pull_latest_checkpoint(str(run2 / "checkpoints"))
        assert got == str(run2 / "checkpoints" / "pwcnet.ckpt-200")
        assert resolve(str(run2)) == got
        assert list(tf.train.load_variable(got, "pwcnet/w")) == [200.0, 201.0, 202.0]
        assert sync2.push() == ["checkpoints/checkpoint"]  # the pulled files are not sent back

        # eval ckpt=obs://...: a prefix, a checkpoint dir and a run dir all localize to a restorable path
        base = "obs://%s/runs/resume" % BUCKET
        prefix = localize(base + "/checkpoints/pwcnet.ckpt-100", cfg, "checkpoint")
        assert resolve(prefix) == prefix and prefix.endswith("pwcnet.ckpt-100")
        assert list(tf.train.load_variable(prefix, "pwcnet/w")) == [100.0, 101.0, 102.0]
        assert localize(base + "/checkpoints/pwcnet.ckpt-100.index", cfg, "checkpoint") == prefix
        for uri in (base + "/checkpoints", base):
            assert resolve(localize(uri, cfg, "checkpoint")).endswith("pwcnet.ckpt-200")
    finally:
        store.close()


@needs_server
@pytest.mark.skipif(BACKEND != "s3rver", reason="needs a server that keeps its objects across a restart "
                    "(npm s3rver, installed by `make tools`); moto_server is in-memory")
def test_server_restart_mid_upload_is_retried(secret, tmp_path, monkeypatch, caplog):
    srv = S3Server(BACKEND, tmp_path / "own-server").start()
    monkeypatch.setenv("OBS_ACCESS_KEY_ID", srv.access_key)
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", srv.secret)  # this server's own key pair
    try:
        srv.make_bucket(BUCKET)
        run = tmp_path / "run"
        for i in range(150):
            (run / "events").mkdir(parents=True, exist_ok=True)
            (run / "events" / ("part-%03d.bin" % i)).write_bytes(os.urandom(64 << 10))
        cfg = obs_cfg(srv, tmp_path, retries=8, backoff_s=0.1, workers=2)
        store = from_config(cfg)
        sync = RunSync("obs://%s/runs/flaky" % BUCKET, str(run), store)
        result, errors = {}, []

        def push():
            try:
                result["sent"] = sync.push()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        caplog.set_level(logging.WARNING, logger="pwcflow")
        worker = threading.Thread(target=push)
        worker.start()
        deadline = time.time() + 30
        while len(srv.stored_keys(BUCKET)) < 20 and time.time() < deadline and worker.is_alive():
            time.sleep(0.005)
        stored_at_kill = len(set(srv.stored_keys(BUCKET)))
        srv.stop(hard=True)  # the server dies mid-upload ...
        time.sleep(1.0)
        srv.start()  # ... and comes back on the same port with the same data dir
        worker.join(60)
        store.close()

        assert not errors, errors
        assert 0 < stored_at_kill < 150, "the server was not stopped mid-upload"
        assert "retry" in caplog.text
        local = {"runs/flaky/" + str(p.relative_to(run)): md5(p) for p in run.rglob("*") if p.is_file()}
        assert sorted(result["sent"]) == sorted(k[len("runs/flaky/"):] for k in local)  # each file once
        assert remote_objects(srv, "runs/flaky/") == local  # none lost, none extra, contents intact
    finally:
        srv.stop()


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

"""The run mirror (``storage/runsync.py``) against a real S3-compatible server on 127.0.0.1: upload waves, checkpoint
order, pull back for resume, retries across a server restart."""

import logging
import os
import threading
import time

import pytest
from support.obs_fixtures import (
    BACKEND,
    BUCKET,
    fake_run_dir,
    md5,
    needs_server,
    obs_cfg,
    remote_objects,
    seed,
)
from support.s3server import S3Server

from pwcflow.storage import runsync
from pwcflow.storage.cache import localize
from pwcflow.storage.client import from_config
from pwcflow.storage.runsync import RunSync


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

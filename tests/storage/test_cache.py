"""The local data cache (``storage/cache.py``): ``obs://`` trees copied once, paged listings, an unreachable endpoint
in one line."""

import logging
import os
from pathlib import Path

import pytest
from support.obs_fixtures import (
    BUCKET,
    md5,
    md5_bytes,
    needs_server,
    obs_cfg,
    remote_objects,
    seed,
)

from pwcflow.config.compose import compose_group
from pwcflow.errors import UserError
from pwcflow.storage.cache import localize
from pwcflow.storage.client import from_config


def test_unreachable_endpoint_gives_up_with_one_line(monkeypatch, tmp_path):
    from support.s3server import free_port

    monkeypatch.setenv("OBS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("OBS_SECRET_ACCESS_KEY", "s")
    cfg = compose_group("storage", "obs", {"endpoint": "http://127.0.0.1:%d" % free_port(), "retries": 2,
                                           "backoff_s": 0.01, "cache_dir": str(tmp_path)})
    with pytest.raises(UserError) as err:
        localize("obs://bkt/data", cfg, "dataset")
    assert "failed after 3 tries" in str(err.value) and "\n" not in str(err.value)


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

"""ModelArts training jobs emulated through the CLI: new style (local --train_url, stdout captured to a file,
kill -9, a restarted container with an empty working directory), old style (s3:// on the local S3 server, and
obs:// through the moxing stand-in), and ModelZoo's grep/awk extraction on the captured log."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY
from support.s3server import choose_backend, running

from pwcflow.config.compose import compose_group
from pwcflow.storage import cache, runsync
from pwcflow.tf1 import tf

STANDINS = Path(__file__).resolve().parents[1] / "support" / "standins"
ARGS = TINY + ["train.save_interval=2", "train.val_interval=4", "train.display_interval=2"]
BACKEND = choose_backend()


def _env(extra=None, moxing=False) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OBS_", "S3_", "MOXING_"))}
    paths = [str(ROOT)] + ([str(STANDINS)] if moxing else []) + [env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    env.update(extra or {})
    return env


def _start(cwd: Path, argv, log: Path, env) -> subprocess.Popen:
    cwd.mkdir(parents=True, exist_ok=True)
    with open(str(log), "w") as fh:  # ModelArts writes stdout and stderr to a file
        return subprocess.Popen([sys.executable, "-m", "pwcflow.train"] + list(argv), cwd=str(cwd), env=env,
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _run(cwd: Path, argv, log: Path, env) -> str:
    proc = _start(cwd, argv, log, env)
    assert proc.wait(timeout=900) == 0, log.read_text()[-3000:]
    return log.read_bytes().decode()


def _train_steps(text: str):
    return [int(ln.split()[3]) for ln in text.split("\n") if "[Train]:" in ln]


def _extract(log: Path, pattern: str, field: int) -> str:
    cmd = "grep '%s' '%s' | awk 'END {print $%d}'" % (pattern, log, field)
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, check=True).stdout.strip()


def _checkpoints(folder: Path):
    return sorted(str(p)[:-len(".index")] for p in folder.rglob("*.index"))


@pytest.mark.slow
def test_new_style_job_killed_and_restarted_resumes_from_train_url(tmp_path):
    train_url = tmp_path / "home" / "ma-user" / "modelarts" / "outputs" / "train_url_0"
    data_url = tmp_path / "home" / "ma-user" / "modelarts" / "inputs" / "data_url_0"
    data_url.mkdir(parents=True)
    argv = ARGS + ["train.iterations=12", "storage=obs", "--data_url=%s/" % data_url, "--train_url=%s/" % train_url]
    env = _env()  # no OBS_* keys: a new-style job needs none
    first = _start(tmp_path / "container1", argv, tmp_path / "log1.txt", env)
    state = train_url / "checkpoints" / "checkpoint"
    deadline = time.time() + 600
    while not state.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.5)
    assert first.poll() is None, "the first run ended before it could be killed: %s" % (tmp_path / "log1.txt")
    os.killpg(first.pid, signal.SIGKILL)  # the platform's kill -9 of our own process group
    first.wait()
    text = _run(tmp_path / "container2", argv, tmp_path / "log2.txt", env)  # fresh, empty working directory
    steps = _train_steps(text)
    assert steps[0] >= 4 and steps[-1] == 12, steps  # resumed (a fresh run's first line is Iter 2), to the end
    assert "\r" not in text and not list((tmp_path / "container2").iterdir())  # nothing left in the cwd
    for name in ("metrics.json", ".hydra/config.yaml", "train.log", "checkpoints/best/checkpoint"):
        assert (train_url / name).exists(), name
    assert list((train_url / "tb").iterdir())
    prefixes = _checkpoints(train_url / "checkpoints")
    assert prefixes and any(p.endswith("ckpt-12") for p in prefixes)
    for prefix in prefixes:  # every checkpoint the job leaves is complete and restorable
        reader = tf.train.load_checkpoint(prefix)
        assert reader.get_tensor("global_step") == int(prefix.rsplit("-", 1)[1])
    log = tmp_path / "log2.txt"
    assert re.match(r"^sec/step=\d+\.\d+,$", _extract(log, "sec/step=", 10))
    assert _extract(log, "loss=", 6) == "loss=%s," % re.findall(r"loss=([\d.]+),", text)[-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if BACKEND is None:
        pytest.skip("no S3-compatible server (run `make tools`)")
    with running(BACKEND, tmp_path_factory.mktemp("s3")) as srv:
        yield srv


@pytest.mark.slow
def test_old_style_job_s3_train_url_with_s3_endpoint(server, tmp_path):
    env = _env({"OBS_ACCESS_KEY_ID": server.access_key, "OBS_SECRET_ACCESS_KEY": server.secret,
                "S3_ENDPOINT": server.url})  # the endpoint variable ModelArts sets
    argv = ARGS + ["storage.cache_dir=%s" % (tmp_path / "cache"), "--train_url=s3://runs/old1/"]
    _run(tmp_path / "c1", argv + ["train.iterations=4"], tmp_path / "log1.txt", env)
    keys = server.stored_keys("runs")
    assert "old1/checkpoints/checkpoint" in keys and "old1/metrics.json" in keys
    text = _run(tmp_path / "c2", argv + ["train.iterations=6"], tmp_path / "log2.txt", env)
    assert _train_steps(text) == [6]


def _platform_upload(server, folder: Path, prefix: str) -> None:
    """What a new-style job does with its local train_url: copy every file to the output's OBS folder."""
    client = server.client()
    try:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            resp = client.putFile("runs", "%s/%s" % (prefix, path.relative_to(folder).as_posix()), str(path))
            assert resp.status < 300, (path, resp.status)
    finally:
        client.close()


@pytest.mark.slow
def test_new_style_job_without_predownload_resumes_from_its_obs_output(server, tmp_path):
    """The output not pre-downloaded: a restarted container's train_url is empty and ``MA_OUTPUTS`` (ModelZoo
    ``FaceBoxes_ID1074_for_TensorFlow/model/run00/models/run00/my_env.log:79``) names its OBS folder."""
    s3 = {"OBS_ACCESS_KEY_ID": server.access_key, "OBS_SECRET_ACCESS_KEY": "S3RVER", "S3_ENDPOINT": server.url}
    cfg = ARGS + ["storage.path_style=true", "storage.signature=v4", "storage.region=us-east-1"]

    def job(name: str, obs_url: str, *extra: str):
        train_url = tmp_path / name / "home" / "ma-user" / "modelarts" / "outputs" / "train_url_0"
        outputs = {"outputs": [{"parameter": {"label": "train_url", "value": str(train_url)},
                                "data_source": {"obs": {"obs_url": obs_url}}}]}
        env = _env(dict(s3, MA_OUTPUTS=json.dumps(outputs)))
        argv = cfg + list(extra) + ["--train_url=%s/" % train_url]
        return _start(tmp_path / name / "device0", argv, tmp_path / ("%s.log" % name), env), train_url

    first, url1 = job("c1", "/runs/job1/", "train.iterations=4")
    assert first.wait(timeout=900) == 0, (tmp_path / "c1.log").read_text()[-3000:]
    assert _train_steps((tmp_path / "c1.log").read_text()) == [2, 4]  # a new job (empty OBS folder): from step 0
    _platform_upload(server, url1, "job1")
    again, url2 = job("c2", "/runs/job1/", "train.iterations=6")  # restarted container, empty train_url
    assert again.wait(timeout=900) == 0, (tmp_path / "c2.log").read_text()[-3000:]
    text = (tmp_path / "c2.log").read_text()
    assert "resuming from obs://runs/job1/checkpoints/pwcnet.ckpt-4" in text and _train_steps(text) == [6]
    assert tf.train.load_checkpoint(str(url2 / "checkpoints" / "pwcnet.ckpt-6")).get_tensor("global_step") == 6
    metrics = json.loads((url2 / "metrics.json").read_text())  # the earlier run's history kept for the upload
    assert [h["step"] for h in metrics["history"]][:1] == [4], metrics
    assert (url2 / "checkpoints" / "best" / "checkpoint").exists()
    fresh, url3 = job("c3", "/runs/job1/", "train.iterations=6", "resume=false")  # would orphan job1's pointers
    assert fresh.wait(timeout=900) == 1
    assert "error: the job's output obs://runs/job1 already has checkpoints (step 4)" in \
        (tmp_path / "c3.log").read_text()
    assert not (url3 / "checkpoints").exists()


@pytest.mark.slow
def test_old_style_job_through_moxing(tmp_path):
    root = tmp_path / "obs"
    (root / "runs").mkdir(parents=True)  # the bucket
    env = _env({"MOXING_STANDIN_ROOT": str(root)}, moxing=True)  # no OBS_* keys: moxing holds the credentials
    argv = ARGS + ["storage.cache_dir=%s" % (tmp_path / "cache"), "--train_url=obs://runs/mx/"]
    _run(tmp_path / "c1", argv + ["train.iterations=4"], tmp_path / "log1.txt", env)
    assert (root / "runs" / "mx" / "checkpoints" / "checkpoint").exists()
    assert (root / "runs" / "mx" / "metrics.json").exists()
    text = _run(tmp_path / "c2", argv + ["train.iterations=6"], tmp_path / "log2.txt", env)
    assert _train_steps(text) == [6]
    calls = (root / ".calls").read_text()
    assert "copy obs://runs/mx/checkpoints/pwcnet.ckpt-4.index" in calls  # the resume pulled through moxing


@pytest.fixture
def moxing_standin(monkeypatch):
    """``import moxing`` finds the stand-in for this test only (it is dropped from sys.modules afterwards)."""
    def drop():
        for name in [m for m in sys.modules if m == "moxing" or m.startswith("moxing.")]:
            del sys.modules[name]

    drop()
    monkeypatch.syspath_prepend(str(STANDINS))
    yield
    drop()


def test_localize_through_moxing(tmp_path, monkeypatch, moxing_standin):
    root = tmp_path / "obs"
    (root / "bkt" / "data" / "sub").mkdir(parents=True)
    (root / "bkt" / "data" / "a.txt").write_text("A")
    (root / "bkt" / "data" / "sub" / "b.txt").write_text("BB")
    monkeypatch.setenv("MOXING_STANDIN_ROOT", str(root))
    for key in ("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    cfg = compose_group("storage", "obs", {"cache_dir": str(tmp_path / "cache")})
    local = cache.localize("s3://bkt/data", cfg, "dataset")
    assert (Path(local) / "a.txt").read_text() == "A" and (Path(local) / "sub" / "b.txt").read_text() == "BB"
    assert "copy obs://bkt/data/sub/b.txt" in (root / ".calls").read_text()
    assert cache.localize("obs://bkt/data/a.txt", cfg, "file").endswith("a.txt")
    shutil.rmtree(str(root / "bkt"))
    with pytest.raises(Exception, match="nothing found|does not exist"):
        cache.localize("obs://bkt/data2", cfg, "dataset")


def test_run_sync_needs_no_client_for_a_local_train_url(tmp_path, monkeypatch):
    for key in ("OBS_ACCESS_KEY_ID", "OBS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key, raising=False)
    run = str(tmp_path / "train_url_0")
    obs = compose_group("storage", "obs")
    assert runsync.run_sync(obs, run) is None  # storage=obs, local train_url
    assert runsync.run_sync(compose_group("storage", "obs", {"output_url": run + "/"}), run) is None
    with pytest.raises(Exception, match="hydra.run.dir"):
        runsync.run_sync(compose_group("storage", "local", {"output_url": str(tmp_path / "elsewhere")}), run)


def test_platform_output_reads_ma_outputs_for_this_run_dir_only(tmp_path, monkeypatch):
    run = str(tmp_path / "outputs" / "train_url_0")
    entry = {"parameter": {"label": "train_url", "value": run + "/"}, "data_source": {"obs": {"obs_url": "/bkt/a/b/"}}}
    monkeypatch.setenv("MA_OUTPUTS", json.dumps({"outputs": [entry]}))
    assert runsync.platform_output(run) == "obs://bkt/a/b"
    assert runsync.platform_output(str(tmp_path / "elsewhere")) is None  # another folder: not the job's output
    monkeypatch.setenv("MA_OUTPUTS", "{not json")
    assert runsync.platform_output(run) is None
    monkeypatch.delenv("MA_OUTPUTS")
    assert runsync.platform_output(run) is None

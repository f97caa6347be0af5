"""Live input (``predict input=camera:N`` / stream URL / ``live.enabled=true``): a video file stands in for the
camera through the same capture path (``frames.open_capture``); headless here, so fps lines instead of a window."""

import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import ROOT, error_line, random_checkpoint, run_module
from support.layouts import sequence

from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.inference import frames, live
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.model.pwcnet import ModelSpec

SM = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
SIZE = (64, 96)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("ckpt"), seed=6)


def _video(path, n: int):
    imgs, _ = sequence(SIZE, n, (1, 2), seed=11)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (SIZE[1], SIZE[0]))
    for img in imgs:
        writer.write(img[:, :, ::-1].copy())
    writer.release()
    return [f for _, f in frames.capture_frames(frames.open_capture(str(path)))]  # what the capture decodes


def test_sources_and_one_line_refusals(monkeypatch):
    assert frames.is_live("camera:0") and frames.is_live("rtsp://127.0.0.1/x") and frames.is_live("http://h/v.mjpg")
    assert not frames.is_live("clip.mp4") and not frames.is_live("obs://b/x") and not frames.is_live("camera:x")
    with pytest.raises(UserError, match=r"^cannot open camera 97: camera:97$"):
        frames.open_capture("camera:97")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert not live.window_available()


@pytest.mark.slow
def test_video_stands_in_for_the_camera(ckpt, tmp_path):
    decoded = _video(tmp_path / "clip.avi", 4)
    out = tmp_path / "out"
    env = {"DISPLAY": ""}
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "input=%s" % (tmp_path / "clip.avi"),
                      "live.enabled=true", "out=%s" % out, "viz=true", "live.save_frames=true", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = proc.stdout + proc.stderr  # log lines go to stdout (Hydra's console handler), fps lines to stderr
    assert "no window: fps lines" in said and "live: stopped (the input ended) after 3 flows" in said
    assert "live: 1 flows" in proc.stderr
    stems = ["frame_%06d" % i for i in range(3)]
    assert sorted(os.listdir(str(out))) == sorted([s + ".flo" for s in stems] + ["frames", "viz"])
    pictures = [s + ".png" for s in stems]
    assert sorted(os.listdir(str(out / "viz"))) == sorted(os.listdir(str(out / "frames"))) == pictures
    p = FlowPredictor(SM, str(ckpt))
    try:
        for i, stem in enumerate(stems):
            np.testing.assert_allclose(flowio.read_flo(str(out / (stem + ".flo"))),
                                       p.predict(decoded[i], decoded[i + 1]), atol=1e-4)
    finally:
        p.close()
    proc = run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "input=%s" % (tmp_path / "clip.avi"),
                      "live.enabled=true", "out=null", "live.max_frames=1", cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "stopped (live.max_frames reached) after 1 flows" in proc.stdout + proc.stderr
    line = error_line(run_module("pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "input=camera:0",
                                 "live.window=true", "out=null", cwd=tmp_path, env=env))
    assert "live.window=true: no window here" in line


@pytest.mark.slow
def test_ctrl_c_stops_cleanly(ckpt, tmp_path):
    _video(tmp_path / "long.avi", 400)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "pwcflow.predict", "ckpt=%s" % ckpt, "model=sm-6-2", "live.enabled=true",
           "input=%s" % (tmp_path / "long.avi"), "out=%s" % out]
    env = dict(os.environ, PYTHONPATH=str(ROOT), DISPLAY="")
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not (out.is_dir() and len(os.listdir(str(out))) >= 2):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    proc.send_signal(signal.SIGINT)
    said, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert "live: stopped (Ctrl-C) after" in said + err and "Traceback" not in err
    names = os.listdir(str(out))
    assert names and all(n.endswith(".flo") for n in names) and len(names) < 399  # no temp file left
    for n in names:
        assert flowio.read_flo(str(out / n)).shape == SIZE + (2,)

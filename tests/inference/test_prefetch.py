"""``pwcflow.inference.prefetch`` (bounded reader / ordered writer threads) and the overlapped sequence loop:
same outputs bit for bit as the serial loop, errors carried to the main thread unchanged, threads stopped."""

import contextlib
import threading
import time

import numpy as np
import pytest
from support.layouts import sequence

from pwcflow.data import flowio
from pwcflow.errors import UserError
from pwcflow.inference import frames, prefetch
from pwcflow.inference.predictor import FlowPredictor
from pwcflow.inference.sequence import Options, predict_pairs
from pwcflow.model.pwcnet import ModelSpec


def _threads() -> list:
    return [t.name for t in threading.enumerate() if t.name.startswith("pwcflow-")]


@pytest.mark.parametrize("depth", [0, 2])
def test_prefetch_order_error_after_items_and_bounded(depth):
    produced = []

    def items():
        for i in range(6):
            produced.append(i)
            yield i
        raise UserError("cannot read image: f6.png")

    got = []
    with pytest.raises(UserError, match="^cannot read image: f6.png$"):
        with contextlib.closing(prefetch.prefetch(items(), depth)) as it:
            for x in it:
                time.sleep(0.05)
                got.append(x)
                assert len(produced) <= len(got) + depth + 1  # never more than depth ahead (+ the one in hand)
    assert got == list(range(6)) and _threads() == []


def test_prefetch_runs_ahead_and_stops_on_early_exit():
    produced = []

    def items():
        for i in range(100):
            produced.append(i)
            yield i

    with contextlib.closing(prefetch.prefetch(items(), 3)) as it:
        assert next(it) == 0
        time.sleep(0.3)
        assert len(produced) >= 3  # decoded ahead while the consumer was busy
    assert _threads() == [] and len(produced) <= 6


def test_writer_order_error_and_drain():
    done = []

    def write(i):
        time.sleep(0.01)
        if i == 3:
            raise OSError(28, "No space left on device", "out/f3.flo")
        done.append(i)

    with pytest.raises(OSError) as info:
        with prefetch.Writer(2) as w:
            for i in range(10):
                w.submit(write, i)
    assert str(info.value) == "[Errno 28] No space left on device: 'out/f3.flo'"
    assert done == [0, 1, 2] and _threads() == []  # in order; nothing after the failed write


def test_writer_finishes_submitted_writes_on_interrupt():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with prefetch.Writer(2) as w:
            for i in range(3):
                w.submit(lambda i=i: (time.sleep(0.05), done.append(i)))
            raise KeyboardInterrupt
    assert done == [0, 1, 2] and _threads() == []


@pytest.fixture(scope="module")
def predictor():
    p = FlowPredictor(ModelSpec(name="sm-6-2", dense=False, context_all_levels=False), None, seed=4)
    yield p
    p.close()


def _frames(folder, n=6) -> list:
    """``n`` frames of 64x96 and 2 of 64x128 (a size change splits a batch); their pairs, from a list file."""
    imgs = sequence((64, 96), n, (2, 1), seed=11)[0] + sequence((64, 128), 2, (1, 0), seed=12)[0]
    for i, img in enumerate(imgs):
        flowio.write_image(str(folder / ("f%02d.png" % i)), img)
    lines = ["f%02d.png f%02d.png" % (i, i + 1) for i in list(range(n - 1)) + [n]]
    (folder / "pairs.txt").write_text("\n".join(lines) + "\n")
    return frames.discover(str(folder / "pairs.txt"))[0]


@pytest.mark.parametrize("fmt,bidirectional", [("flo", False), ("npy", True)])
def test_overlap_writes_the_same_bytes(tmp_path, predictor, fmt, bidirectional):
    pairs = _frames(tmp_path / "in")
    files = {}
    for overlap in (False, True):
        out = tmp_path / ("out-%s" % overlap)
        opts = Options(out=str(out), fmt=fmt, batch=3, bidirectional=bidirectional, progress=False,
                       overlap=overlap)
        assert predict_pairs(predictor, pairs, frames.FrameReader(), opts) == (len(pairs), 0)
        files[overlap] = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    assert len(files[True]) == len(pairs) * (4 if bidirectional else 1)
    assert files[True] == files[False]
    assert _threads() == []


def test_overlap_bad_frame_keeps_finished_and_same_error(tmp_path, predictor):
    pairs = _frames(tmp_path / "in", n=5)
    (tmp_path / "in" / "f03.png").write_bytes(b"not a png")
    for overlap in (False, True):
        out = tmp_path / ("out-%s" % overlap)
        with pytest.raises(UserError) as info:
            predict_pairs(predictor, pairs, frames.FrameReader(),
                          Options(out=str(out), batch=4, progress=False, overlap=overlap))
        assert "cannot read image" in str(info.value) and "f03.png" in str(info.value)
        assert sorted(p.name for p in out.iterdir()) == ["f00.flo", "f01.flo"]  # read before the bad frame
    assert _threads() == []


def test_overlap_write_error_reaches_the_caller(tmp_path, predictor, monkeypatch):
    pairs = _frames(tmp_path / "in")
    from pwcflow.inference import sequence as seq

    real = seq.write_flow

    def full_disk(path, flow, fmt):
        if path.endswith("f02.flo"):
            raise OSError(28, "No space left on device", path)
        real(path, flow, fmt)

    monkeypatch.setattr(seq, "write_flow", full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        predict_pairs(predictor, pairs, frames.FrameReader(), Options(out=str(tmp_path / "out"), batch=2,
                                                                      progress=False))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["f00.flo", "f01.flo"]
    assert _threads() == []
    np.testing.assert_array_equal(flowio.read_flo(str(tmp_path / "out" / "f00.flo")).shape, (64, 96, 2))


def test_eval_overlap_same_metrics_and_files(tmp_path, predictor):
    """``pwcflow.eval.evaluate`` with its writer thread and inline: the same metrics and the same .flo bytes."""
    from support.layouts import make_sintel

    from pwcflow.data.datasets import DatasetSpec, build
    from pwcflow.eval import Options as EvalOptions
    from pwcflow.eval import evaluate

    make_sintel(str(tmp_path / "sintel"), scenes=("alley_1", "bamboo_2"), frames=3, size=(64, 96),
                passes=("clean",), with_test=False)
    samples = build(DatasetSpec("sintel_clean", "sintel", root=str(tmp_path / "sintel"), passes=("clean",)), "all")
    got = {}
    for overlap in (False, True):
        flo = tmp_path / ("flo-%s" % overlap)
        outcome = evaluate(predictor, samples, EvalOptions(batch=2, workers=1, flo_dir=str(flo), sheet_pairs=2,
                                                           progress=False, overlap=overlap), passes=("clean",))
        got[overlap] = (outcome.metrics.result(), outcome.pairs_done, len(outcome.sheet.rows),
                        {str(p.relative_to(flo)): p.read_bytes() for p in sorted(flo.rglob("*.flo"))})
    assert got[True][1] == len(samples) and len(got[True][3]) == len(samples)
    assert got[True] == got[False]
    assert _threads() == []

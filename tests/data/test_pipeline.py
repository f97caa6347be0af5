"""The training ``tf.data`` stream (static shapes, determinism, epochs, shards, errors) and the eval iterator."""

import functools
import time

import numpy as np
import pytest

from pwcflow.data.augment import AugmentSpec
from pwcflow.data.datasets import DatasetSpec, Sample, build
from pwcflow.data.pipeline import as_user_error, eval_batches, train_dataset
from pwcflow.errors import UserError
from pwcflow.tf1 import tf

HEAVY = AugmentSpec("heavy", 0.5, 0.5, (0.5, 0.05), (0.5, 0.05))


def _tagged(i, size, gt=True, delay=0.0):
    """A pair whose pixels all equal ``i`` (so the stream says which sample it served)."""
    time.sleep(delay)
    img = np.full(size + (3,), i, np.uint8)
    flow = np.full(size + (2,), float(i), np.float32) if gt else None
    return img, img.copy(), flow, None if flow is None else np.ones(size, np.float32)


def tagged(n, size=(8, 12), gt=True, delay=0.0, sizes=None):
    return [Sample("t/%d" % i, "t", functools.partial(_tagged, i, (sizes[i] if sizes else size), gt, delay),
                   ("/data/t/%d.png" % i,)) for i in range(n)]


def run(ds, count):
    """The first ``count`` elements of a dataset, in a fresh session."""
    nxt = tf.data.make_one_shot_iterator(ds).get_next()
    with tf.Session() as sess:
        return [sess.run(nxt) for _ in range(count)]


def stream(samples, count, crop=(8, 12), batch=1, augment=AugmentSpec(), seed=0, **kw):
    with tf.Graph().as_default():
        return run(train_dataset(samples, crop, batch, augment, seed, **kw), count)


def served(batches):
    return [int(v) for x, _, _ in batches for v in x[:, 0, 0, 0, 0] * 255 + 0.5]


def test_shapes_types_and_ranges():
    samples = build(DatasetSpec("s", "synthetic", train_size=6, size=(96, 128), max_motion=6.0), "train")
    with tf.Graph().as_default():
        ds = train_dataset(samples, (64, 96), 3, HEAVY, seed=1)
        x, y, v = tf.data.make_one_shot_iterator(ds).get_next()
        assert x.shape.as_list() == [3, 2, 64, 96, 3] and x.dtype == tf.float32
        assert y.shape.as_list() == [3, 64, 96, 2] and v.shape.as_list() == [3, 64, 96]
        with tf.Session() as sess:
            xs, ys, vs = sess.run((x, y, v))
    assert 0.0 <= xs.min() and xs.max() <= 1.0 and xs.std() > 0.05
    assert ys.dtype == np.float32 and np.abs(ys).max() > 0.1 and set(np.unique(vs)) <= {0.0, 1.0}


def test_deterministic_whatever_the_parallelism():
    samples = build(DatasetSpec("s", "synthetic", train_size=5, size=(64, 96), max_motion=4.0), "train")
    a = stream(samples, 4, crop=(32, 64), batch=2, augment=HEAVY, seed=7, parallel=1)
    b = stream(samples, 4, crop=(32, 64), batch=2, augment=HEAVY, seed=7, parallel=3)
    c = stream(samples, 4, crop=(32, 64), batch=2, augment=HEAVY, seed=8, parallel=3)
    assert all(np.array_equal(p, q) for ea, eb in zip(a, b) for p, q in zip(ea, eb))
    assert not all(np.array_equal(p, q) for ea, ec in zip(a, c) for p, q in zip(ea, ec))


def test_each_epoch_is_a_fresh_permutation():
    got = served(stream(tagged(6), 18, seed=3))
    epochs = [got[i:i + 6] for i in (0, 6, 12)]
    assert all(sorted(e) == list(range(6)) for e in epochs)
    assert len({tuple(e) for e in epochs}) > 1


def test_shards_are_disjoint_within_an_epoch():
    samples = tagged(7)
    parts = [served(stream(samples, 6, seed=5, shard_index=k, shard_count=2)) for k in (0, 1)]
    first = [set(p[:3]) for p in parts]
    assert not first[0] & first[1] and len(first[0] | first[1]) == 6  # 7 // 2 = 3 each, one left out per epoch
    with pytest.raises(UserError, match="shard_index"):
        train_dataset(samples, (8, 12), 1, AugmentSpec(), 0, shard_index=2, shard_count=2)
    with pytest.raises(UserError, match="3 training samples cannot feed 4 workers"):
        train_dataset(tagged(3), (8, 12), 1, AugmentSpec(), 0, shard_count=4)


def test_crop_larger_than_a_frame_names_the_file():
    with tf.Graph().as_default():
        ds = train_dataset(tagged(2), (16, 12), 1, AugmentSpec(), seed=0)
        with pytest.raises(tf.errors.OpError) as err:
            run(ds, 1)
    user = as_user_error(err.value)
    assert isinstance(user, UserError) and "crop 12x16 is larger than the 12x8 frame" in str(user)
    assert "/data/t/" in str(user) and str(user).endswith(".png")
    assert as_user_error(ValueError("unrelated")) is None


def test_samples_without_ground_truth_cannot_train():
    with tf.Graph().as_default():
        ds = train_dataset(tagged(2, gt=False), (8, 12), 1, AugmentSpec(), seed=0)
        with pytest.raises(tf.errors.OpError) as err:
            run(ds, 1)
    assert "ground-truth" in str(as_user_error(err.value))


def test_eval_batches_keep_order_and_group_same_sizes():
    sizes = [(8, 12), (8, 12), (16, 12), (8, 12), (8, 12), (8, 12)]
    got = list(eval_batches(tagged(6, sizes=sizes), batch=2, workers=3))
    assert [names for names, _, _, _ in got] == [["t/0", "t/1"], ["t/2"], ["t/3", "t/4"], ["t/5"]]
    names, x, y, v = got[0]
    assert x.shape == (2, 2, 8, 12, 3) and x.dtype == np.float32 and np.isclose(x[1].max(), 1 / 255.0)
    assert y.shape == (2, 8, 12, 2) and v.shape == (2, 8, 12)
    assert got[1][1].shape == (1, 2, 16, 12, 3)
    assert [n for n, _, _, _ in eval_batches(tagged(5), batch=4)] == [["t/0", "t/1", "t/2", "t/3"], ["t/4"]]


def test_eval_batches_without_ground_truth():
    (names, x, y, v), = list(eval_batches(tagged(3, gt=False), batch=3))
    assert names == ["t/0", "t/1", "t/2"] and x.shape == (3, 2, 8, 12, 3) and y is None and v is None


def test_eval_batches_decode_in_the_background():
    samples = tagged(8, delay=0.1)
    start = time.time()
    got = [n for batch in eval_batches(samples, batch=1, workers=4) for n in batch[0]]
    assert got == ["t/%d" % i for i in range(8)]
    assert time.time() - start < 0.6  # 8 x 0.1 s serially; four threads overlap them

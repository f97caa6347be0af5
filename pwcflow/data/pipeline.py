"""Input pipelines: an endless, shuffled, augmented, sharded ``tf.data`` stream for training, and an
ordered, background-decoded batch iterator for evaluation.

Training determinism: element ``j`` of shard ``k`` is sample ``perm_e[k + K * (j mod m)]`` of epoch
``e = j // m`` (``perm_e`` = a permutation of all samples seeded by (seed, e), ``m`` = samples per
shard), augmented with a RandomState seeded by (seed, e, sample index). The stream is therefore the
same whatever the parallelism, and shards see disjoint samples within an epoch.
"""

import functools
import os
import re
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

import pwcflow.data.augment as aug_lib
from pwcflow.data.augment import AugmentSpec
from pwcflow.data.datasets import Sample
from pwcflow.errors import UserError
from pwcflow.tf1 import tf

EvalBatch = Tuple[List[str], np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]
_FOREVER = 2 ** 62


def training_example(sample: Sample, crop: Tuple[int, int], spec: AugmentSpec,
                     rng: np.random.RandomState) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Load, crop and augment one sample -> (pair uint8 (2, h, w, 3), flow (h, w, 2), valid (h, w))."""
    img1, img2, flow, valid = sample.load()
    if flow is None:
        raise UserError("training needs ground-truth flow but this sample has none: %s" % sample.where)
    h, w = img1.shape[:2]
    if h < crop[0] or w < crop[1]:
        raise UserError("training crop %dx%d is larger than the %dx%d frame: %s"
                        % (crop[1], crop[0], w, h, sample.where))
    if valid is None:
        valid = np.ones((h, w), np.float32)
    img1, img2, flow, valid = aug_lib.augment(aug_lib.random_crop((img1, img2, flow, valid), crop, rng), spec, rng)
    return np.stack([img1, img2]), flow, valid


class _Order:
    """Per-epoch permutations of ``n`` samples (a few cached; safe to call from several threads)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed = n, seed
        self._lock = threading.Lock()
        self._cache = {}  # epoch -> permutation

    def __call__(self, epoch: int) -> np.ndarray:
        with self._lock:
            perm = self._cache.get(epoch)
            if perm is None:
                perm = np.random.RandomState([self.seed, epoch]).permutation(self.n)
                self._cache[epoch] = perm
                for old in [e for e in self._cache if e < epoch - 2]:
                    del self._cache[old]
            return perm


def train_dataset(samples: Sequence[Sample], crop: Tuple[int, int], batch: int, augment: AugmentSpec, seed: int,
                  shard_index: int = 0, shard_count: int = 1, parallel: Optional[int] = None) -> "tf.data.Dataset":
    """Endless batches ``(x [B,2,h,w,3] float32 in [0,1], y [B,h,w,2], valid [B,h,w])`` with static shapes.

    Shuffled per epoch with ``seed``, split into ``shard_count`` disjoint shards (this is ``shard_index``),
    decoded and augmented by ``parallel`` threads (default: one per CPU), prefetched.
    A failing sample surfaces as a ``tf.errors.OpError``; ``as_user_error`` recovers its ``UserError``.
    """
    crop = (int(crop[0]), int(crop[1]))
    if not 0 <= shard_index < shard_count:
        raise UserError("shard_index %d is not in [0, %d)" % (shard_index, shard_count))
    if not 0 <= int(seed) < 2 ** 32:
        raise UserError("the data seed must be in [0, 2^32), got %d" % seed)
    per_shard = len(samples) // shard_count
    if per_shard < 1:
        raise UserError("%d training samples cannot feed %d workers" % (len(samples), shard_count))
    order = _Order(len(samples), int(seed))
    fetch = functools.partial(_fetch, list(samples), order, per_shard, shard_index, shard_count, crop, augment,
                              int(seed))
    h, w = crop

    def load(j: "tf.Tensor") -> Tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
        x, y, v = tf.py_func(fetch, [j], [tf.uint8, tf.float32, tf.float32], name="load_pair")
        x.set_shape([2, h, w, 3])
        y.set_shape([h, w, 2])
        v.set_shape([h, w])
        return x, y, v

    def to_float(x: "tf.Tensor", y: "tf.Tensor", v: "tf.Tensor") -> Tuple["tf.Tensor", "tf.Tensor", "tf.Tensor"]:
        return tf.cast(x, tf.float32) * (1.0 / 255.0), y, v

    threads = int(parallel or os.cpu_count() or 1)
    ds = tf.data.Dataset.range(_FOREVER).map(load, num_parallel_calls=threads)
    ds = ds.batch(int(batch), drop_remainder=True).map(to_float, num_parallel_calls=2)
    return ds.prefetch(2)


def _fetch(samples: List[Sample], order: _Order, per_shard: int, shard_index: int, shard_count: int,
           crop: Tuple[int, int], spec: AugmentSpec, seed: int, j: np.int64):
    epoch, pos = divmod(int(j), per_shard)
    idx = int(order(epoch)[shard_index + shard_count * pos])
    return training_example(samples[idx], crop, spec, np.random.RandomState([seed, epoch, idx]))


def as_user_error(err: BaseException) -> Optional[UserError]:
    """The ``UserError`` a sample raised inside the training pipeline, recovered from TF's wrapping error."""
    if isinstance(err, UserError):
        return err
    m = re.search(r"UserError: ([^\n]+)", str(getattr(err, "message", None) or err))
    return UserError(m.group(1).strip()) if m else None


def _eval_item(sample: Sample):
    img1, img2, flow, valid = sample.load()
    x = np.stack([img1, img2]).astype(np.float32) * np.float32(1.0 / 255.0)
    if flow is not None and valid is None:
        valid = np.ones(flow.shape[:2], np.float32)
    return sample.name, x, flow, valid


def eval_batches(samples: Sequence[Sample], batch: int = 1, workers: int = 2) -> Iterator[EvalBatch]:
    """Yield ``(names, x [B,2,H,W,3] float32 in [0,1], y [B,H,W,2] or None, valid [B,H,W] or None)`` in order.

    No augmentation or padding; samples are decoded by ``workers`` background threads a few ahead of
    the consumer; consecutive samples share a batch only if they have the same size (and ground truth or not).
    """
    if batch < 1 or workers < 1:
        raise UserError("eval batch size and worker count must be >= 1, got %d and %d" % (batch, workers))
    ahead = max(2 * workers, batch + workers)
    group: list = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        it = iter(samples)
        for s in it:
            pending.append(pool.submit(_eval_item, s))
            if len(pending) >= ahead:
                break
        while pending:
            item = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_eval_item, nxt))
            if group and (len(group) == batch or _key(group[0]) != _key(item)):
                yield _stack(group)
                group = []
            group.append(item)
        if group:
            yield _stack(group)


def _key(item) -> Tuple[tuple, bool]:
    return item[1].shape, item[2] is None


def _stack(group: list) -> EvalBatch:
    names = [g[0] for g in group]
    x = np.stack([g[1] for g in group])
    if group[0][2] is None:
        return names, x, None, None
    return names, x, np.stack([g[2] for g in group]), np.stack([g[3] for g in group])

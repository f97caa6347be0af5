"""Data sets in their official on-disk layouts -> lists of ``Sample``.

INTERFACE (owned by the data layer; train/eval rely on it):
- ``Sample``: one frame pair; ``load()`` returns (img1 RGB uint8 (H,W,3), img2, flow float32
  (H,W,2) or None, valid float32 (H,W) or None).
- ``spec_from_config(cfg.dataset) -> DatasetSpec`` (validated), then
  ``build(spec, split) -> List[Sample]`` with split in {"train", "val", "all", "test"}.

Sample names are unique, path-like, and mirror the official submission layouts where there is one:
Sintel ``<pass>/<scene>/frame_XXXX``, KITTI ``flow/XXXXXX_10``; otherwise ``<kind>/...``.
"""

import functools
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from pwcflow.data import flowio, synthetic
from pwcflow.data.spec import KINDS, PASSES, SPLITS, DatasetSpec, _bad, spec_from_config  # noqa: F401 (re-exported)
from pwcflow.errors import UserError

Loaded = Tuple[np.ndarray, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]


@dataclass(frozen=True)
class Sample:
    """One frame pair: ``name`` is unique and path-like (e.g. ``clean/alley_1/frame_0001``).

    ``files`` lists the files it reads (img1, img2[, flow]) for error messages; empty when generated.
    """

    name: str
    scene: str
    loader: Callable[[], Loaded]
    files: Tuple[str, ...] = ()

    def load(self) -> Loaded:
        """Read (img1, img2, flow or None, valid or None)."""
        return self.loader()

    @property
    def where(self) -> str:
        """The file to name in an error about this sample (its first frame), or its name."""
        return self.files[0] if self.files else self.name


class EmptySplit(UserError):
    """A split that holds no pairs (e.g. ``val`` of Sintel without ``val_scenes``)."""


def build(spec: DatasetSpec, split: str) -> List[Sample]:
    """The samples of ``split`` (train | val | all | test) of the data set ``spec`` describes, in a fixed order."""
    if split not in SPLITS:
        raise UserError("unknown split %r for data set %s (use one of %s)" % (split, spec.name, ", ".join(SPLITS)))
    samples = _READERS[spec.kind](spec, split)
    if not samples:
        raise EmptySplit("split %r of data set %s is empty (root: %s)" % (split, spec.name, spec.root or "generated"))
    return samples


# ---------------------------------------------------------------------------------------------- loading


def load_pair(img1: str, img2: str, flow: Optional[str] = None, scale: float = 1.0) -> Loaded:
    """Read two frames and optionally their flow, checking sizes; ``scale`` < 1 resizes all (flow x scale)."""
    a, b = flowio.read_image(img1), flowio.read_image(img2)
    if a.shape != b.shape:
        raise UserError("frames differ in size (%dx%d vs %dx%d): %s" % (a.shape[1], a.shape[0], b.shape[1],
                                                                        b.shape[0], img2))
    f = v = None
    if flow is not None:
        f, v = flowio.read_flow(flow)
        if f.shape[:2] != a.shape[:2]:
            raise UserError("flow is %dx%d but its frames are %dx%d: %s" % (f.shape[1], f.shape[0], a.shape[1],
                                                                            a.shape[0], flow))
    if scale != 1.0:
        size = (int(a.shape[1] * scale), int(a.shape[0] * scale))
        a, b = (cv2.resize(im, size, interpolation=cv2.INTER_LINEAR) for im in (a, b))
        if f is not None:
            f = cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) * np.float32(scale)
            v = cv2.resize(v, size, interpolation=cv2.INTER_NEAREST)
    return a, b, f, v


def _pair(name: str, scene: str, img1: str, img2: str, flow: Optional[str] = None, scale: float = 1.0) -> Sample:
    files = (img1, img2) if flow is None else (img1, img2, flow)
    return Sample(name, scene, functools.partial(load_pair, img1, img2, flow, scale), files)


def _synthetic_load(spec: synthetic.SyntheticSpec, split: str, index: int) -> Loaded:
    img1, img2, flow = synthetic.make_pair(spec, split, index)
    return img1, img2, flow, np.ones(flow.shape[:2], np.float32)


# ---------------------------------------------------------------------------------------------- helpers


def _folder(path: str, what: str) -> str:
    """``path`` if it is a folder, else a ``UserError`` naming it."""
    if not os.path.isdir(path):
        raise UserError("%s not found: %s" % (what, path))
    return path


def _root(spec: DatasetSpec, sub: str = "") -> str:
    root = os.path.expanduser(str(spec.root))
    _folder(root, "dataset.root folder")
    return os.path.join(root, sub) if sub else root


def _numbered(folder: str, fmt: str) -> List[int]:
    """Frame numbers of files named like ``fmt`` (e.g. ``frame_%04d.png``); a gap raises naming the missing file."""
    head, tail = fmt.split("%04d")
    rx = re.compile(re.escape(head) + r"(\d+)" + re.escape(tail) + "$")
    nums = sorted(int(m.group(1)) for m in (rx.match(n) for n in os.listdir(folder)) if m)
    for prev, cur in zip(nums, nums[1:]):
        if cur != prev + 1:
            raise UserError("scene is missing a frame: %s" % os.path.join(folder, fmt % (prev + 1)))
    return nums


def _need_file(path: str, present: set) -> str:
    if os.path.basename(path) not in present:
        raise UserError("file not found: %s" % path)
    return path


def _listing(folder: str) -> set:
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def _holdout(n: int, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of held-out items: the first ceil(fraction * n) of RandomState(seed).permutation(n).

    This is scikit-learn's ``train_test_split(test_size=fraction, random_state=seed)``, which tfoptflow uses.
    """
    mask = np.zeros(n, bool)
    if fraction > 0 and n:
        mask[np.random.RandomState(seed).permutation(n)[:int(math.ceil(fraction * n))]] = True
    return mask


def _pick(items: Sequence[Any], held_out: np.ndarray, split: str) -> List[Any]:
    if split == "all":
        return list(items)
    keep = held_out if split == "val" else ~held_out
    return [it for it, k in zip(items, keep) if k]


def _no_test(spec: DatasetSpec) -> UserError:
    return UserError("data set %s (%s) has no test split; use train, val or all" % (spec.name, spec.kind))


# ---------------------------------------------------------------------------------------------- readers


def _synthetic(spec: DatasetSpec, split: str) -> List[Sample]:
    if split == "test":
        raise _no_test(spec)
    gen = synthetic.SyntheticSpec(size=tuple(int(v) for v in spec.size), max_motion=float(spec.max_motion),
                                  seed=int(spec.seed))
    parts = {"train": ["train"], "val": ["val"], "all": ["train", "val"]}[split]
    counts = {"train": spec.train_size, "val": spec.val_size}
    return [Sample("synthetic/%s/%06d" % (p, i), p, functools.partial(_synthetic_load, gen, p, i))
            for p in parts for i in range(counts[p])]


def _flyingchairs(spec: DatasetSpec, split: str) -> List[Sample]:
    if split == "test":
        raise _no_test(spec)
    data = _folder(_root(spec, "data"), "FlyingChairs data folder")
    present = set(os.listdir(data))
    ids = sorted(m.group(1) for m in (re.match(r"(\d+)_img1\.ppm$", n) for n in present) if m)
    samples = [_pair("flyingchairs/%s" % i, i, os.path.join(data, i + "_img1.ppm"),
                     _need_file(os.path.join(data, i + "_img2.ppm"), present),
                     _need_file(os.path.join(data, i + "_flow.flo"), present)) for i in ids]
    if spec.split_file is None:
        return _pick(samples, _holdout(len(samples), spec.val_fraction, spec.split_seed), split)
    path = spec.split_file if os.path.isabs(spec.split_file) else _root(spec, spec.split_file)
    if not os.path.isfile(path):
        raise UserError("FlyingChairs split file not found (download FlyingChairs_train_val.txt or set "
                        "dataset.split_file=null): %s" % path)
    with open(path) as fh:
        marks = [line.strip() for line in fh if line.strip()]
    if len(marks) != len(samples) or not set(marks) <= {"1", "2"}:
        raise UserError("split file lists %d pairs (values 1/2) but %d pairs were found: %s"
                        % (len(marks), len(samples), path))
    picked = _pick(samples, np.array([m == "2" for m in marks], dtype=bool), split)
    if not picked:  # named here: the split file decides which pairs a split has
        raise EmptySplit("split %r of data set %s is empty: the split file %s marks no pair of %s for it"
                         % (split, spec.name, path, data))
    return picked


def _flyingthings3d(spec: DatasetSpec, split: str) -> List[Sample]:
    """tfoptflow's subset: left camera, forward flow (``into_future``), pairs (t, t+1) within a scene, minus
    ``all_unused_files.txt``; ``scale: 0.5`` gives its FlyingThings3D_HalfRes. A pair's flow is read from the
    ``.pfm`` of the release, or a ``.flo`` of the same name (a pre-generated HalfRes tree)."""
    part = "TEST" if split == "test" else "TRAIN"
    unused = set()
    for cand in (_root(spec, "frames_cleanpass/all_unused_files.txt"), _root(spec, "all_unused_files.txt")):
        if os.path.isfile(cand):
            with open(cand) as fh:
                unused |= {line.strip() for line in fh if line.strip()}
    keys = []  # (subset, scene, frame number), shared by all passes so a pair is train or val in every pass
    first = _folder(_root(spec, "frames_%spass/%s" % (spec.passes[0], part)), "FlyingThings3D frames folder")
    for subset in sorted(os.listdir(first)):
        for scene in sorted(os.listdir(os.path.join(first, subset))):
            left = os.path.join(first, subset, scene, "left")
            nums = _numbered(_folder(left, "FlyingThings3D left-camera folder"), "%04d.png")
            keys += [(subset, scene, t) for t in nums[:-1]
                     if "%s/%s/%s/left/%04d.png" % (part, subset, scene, t) not in unused]
    if split != "test":
        keys = _pick(keys, _holdout(len(keys), spec.val_fraction, spec.split_seed), split)
    samples = []
    listings: Dict[str, set] = {}
    for p in spec.passes:
        frames = _folder(_root(spec, "frames_%spass/%s" % (p, part)), "FlyingThings3D frames folder")
        for subset, scene, t in keys:
            fdir = _root(spec, "optical_flow/%s/%s/%s/into_future/left" % (part, subset, scene))
            present = listings.setdefault(fdir, _listing(fdir))
            stem = "OpticalFlowIntoFuture_%04d_L" % t
            flow = os.path.join(fdir, stem + (".pfm" if stem + ".pfm" in present else ".flo"))
            left = os.path.join(frames, subset, scene, "left")
            samples.append(_pair("flyingthings3d/%s/%s/%s/%s/%04d" % (p, part, subset, scene, t),
                                 "%s/%s" % (subset, scene), os.path.join(left, "%04d.png" % t),
                                 os.path.join(left, "%04d.png" % (t + 1)), _need_file(flow, present), spec.scale))
    return samples


def _chairsthingsmix(spec: DatasetSpec, split: str) -> List[Sample]:
    """The seed's pre-training mix (tfoptflow MixedDataset): FlyingChairs + FlyingThings3D HalfRes, concatenated."""
    if split == "test":
        raise _no_test(spec)
    root = _root(spec)
    chairs = replace(spec, kind="flyingchairs", root=os.path.join(root, spec.chairs_dir))
    things = replace(spec, kind="flyingthings3d", root=os.path.join(root, spec.things_dir))
    return _flyingchairs(chairs, split) + _flyingthings3d(things, split)


def _sintel(spec: DatasetSpec, split: str) -> List[Sample]:
    """``training/<pass>/<scene>/frame_%04d.png`` + ``training/flow/<scene>/frame_%04d.flo`` (pairs t, t+1);
    ``test`` reads ``test/<pass>/`` without ground truth; ``val`` is the scenes in ``val_scenes``."""
    part = "test" if split == "test" else "training"
    samples = []
    for p in spec.passes:
        base = _folder(_root(spec, os.path.join(part, p)), "Sintel %s/%s folder" % (part, p))
        scenes = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
        unknown = sorted(set(spec.val_scenes) - set(scenes))
        if split != "test" and unknown:
            raise _bad("val_scenes", "no scene %s in %s" % (", ".join(unknown), base))
        if split == "val" and not spec.val_scenes:
            raise EmptySplit("data set %s has no val split: hold scenes out with dataset.val_scenes=[...] (root: %s)"
                            % (spec.name, spec.root))
        if split in ("train", "val"):
            scenes = [s for s in scenes if (s in spec.val_scenes) == (split == "val")]
        for scene in scenes:
            folder = os.path.join(base, scene)
            nums = _numbered(folder, "frame_%04d.png")
            fdir = _root(spec, os.path.join("training", "flow", scene))
            present = _listing(fdir) if part == "training" else set()
            for t in nums[:-1]:
                flow = None
                if part == "training":
                    flow = _need_file(os.path.join(fdir, "frame_%04d.flo" % t), present)
                img1, img2 = (os.path.join(folder, "frame_%04d.png" % k) for k in (t, t + 1))
                samples.append(_pair("%s/%s/frame_%04d" % (p, scene, t), scene, img1, img2, flow))
    return samples


def _kitti2015(spec: DatasetSpec, split: str) -> List[Sample]:
    """``training/image_2/%06d_10.png, _11.png`` + ``training/flow_<gt>/%06d_10.png`` (KITTI 2012's
    ``colored_0`` is read the same way); ``test`` reads ``testing/`` without ground truth."""
    part = "testing" if split == "test" else "training"
    images = _root(spec, os.path.join(part, "image_2"))
    if not os.path.isdir(images) and os.path.isdir(_root(spec, os.path.join(part, "colored_0"))):
        images = _root(spec, os.path.join(part, "colored_0"))
    present = set(os.listdir(_folder(images, "KITTI image folder")))
    ids = sorted(m.group(1) for m in (re.match(r"(\d+)_10\.png$", n) for n in present) if m)
    fdir = _root(spec, os.path.join("training", "flow_" + spec.gt))
    flows = _listing(fdir)
    samples = [_pair("flow/%s_10" % i, i, os.path.join(images, i + "_10.png"),
                     _need_file(os.path.join(images, i + "_11.png"), present),
                     None if part == "testing" else _need_file(os.path.join(fdir, i + "_10.png"), flows))
               for i in ids]
    if split == "test":
        return samples
    return _pick(samples, _holdout(len(samples), spec.val_fraction, spec.split_seed), split)


_READERS = {"synthetic": _synthetic, "flyingchairs": _flyingchairs, "flyingthings3d": _flyingthings3d,
            "chairsthingsmix": _chairsthingsmix, "sintel": _sintel, "kitti2015": _kitti2015}

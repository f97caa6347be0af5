"""Every ``dataset`` config reads its official layout (tiny fixtures from ``layouts``); bad inputs say which path."""

import math
import os
import re
import shutil

import numpy as np
import pytest
from support import layouts
from support.dataset_checks import spec_for, warp_error

from pwcflow.data import flowio
from pwcflow.data.datasets import build
from pwcflow.errors import UserError


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """One folder holding every layout (the chairs+things mix root is ``mix``)."""
    base = tmp_path_factory.mktemp("data")
    layouts.make_sintel(base / "sintel")
    layouts.make_chairs(base / "mix" / "FlyingChairs_release", n=8)
    layouts.make_things(base / "mix" / "FlyingThings3D", unused=["TRAIN/A/0001/left/0007.png"])
    layouts.make_kitti(base / "kitti")
    return base


def check_samples(samples, with_gt=True):
    names = [s.name for s in samples]
    assert len(set(names)) == len(names)
    assert all(not n.startswith("/") and " " not in n for n in names)
    for s in samples:
        img1, img2, flow, valid = s.load()
        assert img1.dtype == np.uint8 and img1.ndim == 3 and img1.shape[2] == 3 and img2.shape == img1.shape
        if not with_gt:
            assert flow is None and valid is None
            continue
        assert flow.dtype == np.float32 and flow.shape == img1.shape[:2] + (2,)
        assert valid.dtype == np.float32 and valid.shape == img1.shape[:2]
        flow = flow * valid[..., None]
        # Fixtures are exact translations (resampled when a reader rescales): the flow must explain frame 2.
        assert warp_error(img1, img2, flow) < 0.3 * warp_error(img1, img2, np.zeros_like(flow)), s.name


def test_sintel(data):
    root = data / "sintel"
    spec = spec_for("sintel_clean", root)
    everything = build(spec, "all")
    assert [s.name for s in everything] == ["clean/alley_1/frame_0001", "clean/alley_1/frame_0002",
                                            "clean/bamboo_2/frame_0001", "clean/bamboo_2/frame_0002"]
    assert spec.eval_split == "all" and spec.crop == (384, 768)
    check_samples(everything)
    # Pairs are (t, t+1): frame 2 of one pair is frame 1 of the next.
    assert np.array_equal(everything[0].load()[1], everything[1].load()[0])
    assert everything[0].files[2].endswith(os.path.join("training", "flow", "alley_1", "frame_0001.flo"))

    final = build(spec_for("sintel_final", root), "all")
    assert [s.name.split("/", 1)[1] for s in final] == [s.name.split("/", 1)[1] for s in everything]
    assert final[0].name.startswith("final/")
    both = build(spec_for("sintel", root), "all")
    assert len(both) == 8 and len({s.name for s in both}) == 8

    test_spec = spec_for("sintel_test", root)
    assert test_spec.eval_split == "test"
    test = build(test_spec, "test")
    assert [s.name for s in test] == ["clean/ambush_1/frame_0001", "clean/ambush_1/frame_0002",
                                      "final/ambush_1/frame_0001", "final/ambush_1/frame_0002"]
    check_samples(test, with_gt=False)


def test_sintel_val_scenes(data):
    spec = spec_for("sintel", data / "sintel", "dataset.val_scenes=[bamboo_2]")
    assert {s.scene for s in build(spec, "val")} == {"bamboo_2"}
    assert {s.scene for s in build(spec, "train")} == {"alley_1"}
    with pytest.raises(UserError, match="dataset.val_scenes"):
        build(spec_for("sintel_clean", data / "sintel"), "val")
    with pytest.raises(UserError, match="dataset.val_scenes.*cave_9"):
        build(spec_for("sintel_clean", data / "sintel", "dataset.val_scenes=[cave_9]"), "train")


def test_flyingchairs(data):
    spec = spec_for("flyingchairs", data / "mix" / "FlyingChairs_release")
    train, val = build(spec, "train"), build(spec, "val")
    assert [s.name for s in val] == ["flyingchairs/00004", "flyingchairs/00008"]  # the '2' lines of the split file
    assert len(train) == 6 and len(build(spec, "all")) == 8
    check_samples(train + val)
    with pytest.raises(UserError, match="no test split"):
        build(spec, "test")
    random = spec_for("flyingchairs", data / "mix" / "FlyingChairs_release", "dataset.split_file=null",
                      "dataset.val_fraction=0.25")
    assert len(build(random, "val")) == 2 and len(build(random, "train")) == 6


def test_flyingthings3d(data):
    root = data / "mix" / "FlyingThings3D"
    spec = spec_for("flyingthings3d", root)
    everything = build(spec, "all")
    # Two scenes of three frames give 4 forward pairs; all_unused_files.txt drops A/0001 frame 7.
    assert [s.name for s in everything] == ["flyingthings3d/clean/TRAIN/A/0000/0006",
                                            "flyingthings3d/clean/TRAIN/A/0000/0007",
                                            "flyingthings3d/clean/TRAIN/A/0001/0006"]
    img1, _, flow, _ = everything[0].load()
    assert img1.shape == (32, 48, 3) and np.allclose(flow, [1.0, 0.5])  # HalfRes: halved frames, halved flow
    check_samples(everything)
    full = build(spec_for("flyingthings3d", root, "dataset.scale=1.0"), "all")
    assert full[0].load()[0].shape == (64, 96, 3) and np.allclose(full[0].load()[2], [2.0, 1.0])
    assert len(build(spec, "val")) == math.ceil(0.03 * 3) and len(build(spec, "train")) == 2
    test = build(spec, "test")
    assert [s.name for s in test] == ["flyingthings3d/clean/TEST/A/0000/0006", "flyingthings3d/clean/TEST/A/0000/0007"]
    both = build(spec_for("flyingthings3d", root, "dataset.passes=[clean,final]"), "val")
    assert [s.name.split("/")[1] for s in both] == ["clean", "final"]  # a pair is held out in every pass


def test_flyingthings3d_reads_a_halfres_tree_with_flo(tmp_path):
    root = layouts.make_things(tmp_path / "things", scenes={"TRAIN": {"B": ("0003",)}}, passes=("clean",))
    fdir = os.path.join(root, "optical_flow", "TRAIN", "B", "0003", "into_future", "left")
    for name in os.listdir(fdir):
        flow, _ = flowio.read_flow(os.path.join(fdir, name))
        flowio.write_flo(os.path.join(fdir, name.replace(".pfm", ".flo")), flow)
        os.remove(os.path.join(fdir, name))
    samples = build(spec_for("flyingthings3d", root, "dataset.scale=1.0"), "all")
    assert len(samples) == 2 and samples[0].files[2].endswith(".flo")
    check_samples(samples)


def test_chairsthingsmix(data):
    spec = spec_for("chairsthingsmix", data / "mix")
    chairs = spec_for("flyingchairs", data / "mix" / "FlyingChairs_release")
    things = spec_for("flyingthings3d", data / "mix" / "FlyingThings3D")
    for split in ("train", "val", "all"):
        assert [s.name for s in build(spec, split)] == [s.name for s in build(chairs, split) + build(things, split)]
    assert spec.crop == (256, 448) and spec.augment.mode == "heavy"


def test_kitti2015(data):
    spec = spec_for("kitti2015", data / "kitti")
    everything = build(spec, "all")
    assert [s.name for s in everything] == ["flow/000000_10", "flow/000001_10", "flow/000002_10"]
    check_samples(everything)
    _, _, _, valid = everything[0].load()
    assert valid[:10].max() == 0 and valid[10:].min() == 1
    assert len(build(spec, "val")) == 1 and len(build(spec, "train")) == 2
    check_samples(build(spec, "test"), with_gt=False)


def _copy(src, dst):
    shutil.copytree(str(src), str(dst))
    return dst


def test_missing_root(tmp_path):
    for name in ("sintel_clean", "flyingchairs", "flyingthings3d", "kitti2015", "chairsthingsmix"):
        missing = tmp_path / "nope"
        with pytest.raises(UserError, match=re.escape(str(missing))):
            build(spec_for(name, missing), "train")


def test_missing_layout_folder_names_it(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=os.path.join("empty", "training", "clean")):
        build(spec_for("sintel_clean", tmp_path / "empty"), "all")


def test_scene_with_a_missing_frame(data, tmp_path):
    root = _copy(data / "sintel", tmp_path / "s")
    gone = root / "training" / "clean" / "bamboo_2" / "frame_0002.png"
    gone.unlink()
    with pytest.raises(UserError, match="missing a frame: " + re.escape(str(gone))):
        build(spec_for("sintel_clean", root), "all")
    things = _copy(data / "mix" / "FlyingThings3D", tmp_path / "t")
    gone = things / "frames_cleanpass" / "TRAIN" / "A" / "0001" / "left" / "0007.png"
    gone.unlink()
    with pytest.raises(UserError, match=re.escape(str(gone))):
        build(spec_for("flyingthings3d", things), "all")


def test_missing_ground_truth_file(data, tmp_path):
    root = _copy(data / "sintel", tmp_path / "s")
    gone = root / "training" / "flow" / "alley_1" / "frame_0002.flo"
    gone.unlink()
    with pytest.raises(UserError, match=re.escape(str(gone))):
        build(spec_for("sintel_clean", root), "all")
    chairs = _copy(data / "mix" / "FlyingChairs_release", tmp_path / "c")
    gone = chairs / "data" / "00003_img2.ppm"
    gone.unlink()
    with pytest.raises(UserError, match=re.escape(str(gone))):
        build(spec_for("flyingchairs", chairs), "train")


def test_corrupt_flow_files_name_the_file(data, tmp_path):
    root = _copy(data / "sintel", tmp_path / "s")
    bad = root / "training" / "flow" / "alley_1" / "frame_0001.flo"
    bad.write_bytes(bad.read_bytes()[:100])
    sample = build(spec_for("sintel_clean", root), "all")[0]
    with pytest.raises(UserError, match=re.escape(str(bad))):
        sample.load()
    things = _copy(data / "mix" / "FlyingThings3D", tmp_path / "t")
    bad = things / "optical_flow" / "TRAIN" / "A" / "0000" / "into_future" / "left" / "OpticalFlowIntoFuture_0006_L.pfm"
    bad.write_bytes(b"PF\n96 64\n-1.0\n" + b"\0" * 10)
    with pytest.raises(UserError, match=re.escape(str(bad))):
        build(spec_for("flyingthings3d", things), "all")[0].load()


def test_image_flow_size_mismatch(data, tmp_path):
    root = _copy(data / "sintel", tmp_path / "s")
    flo = root / "training" / "flow" / "bamboo_2" / "frame_0001.flo"
    flowio.write_flo(str(flo), np.zeros((10, 20, 2), np.float32))
    sample = [s for s in build(spec_for("sintel_clean", root), "all") if s.name == "clean/bamboo_2/frame_0001"][0]
    with pytest.raises(UserError, match="20x10.*128x64.*" + re.escape(str(flo))):
        sample.load()
    img = root / "training" / "clean" / "alley_1" / "frame_0002.png"
    flowio.write_image(str(img), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match=re.escape(str(img))):
        build(spec_for("sintel_clean", root), "all")[0].load()


def test_empty_split(tmp_path, data):
    root = tmp_path / "s"
    (root / "training" / "clean").mkdir(parents=True)
    with pytest.raises(UserError, match="empty.*" + re.escape(str(root))):
        build(spec_for("sintel_clean", root), "all")
    chairs = _copy(data / "mix" / "FlyingChairs_release", tmp_path / "c")
    (chairs / "FlyingChairs_train_val.txt").write_text("1\n" * 8)
    with pytest.raises(UserError, match="'val'.*empty"):
        build(spec_for("flyingchairs", chairs), "val")
    (chairs / "FlyingChairs_train_val.txt").write_text("1\n" * 5)
    with pytest.raises(UserError, match="FlyingChairs_train_val.txt"):
        build(spec_for("flyingchairs", chairs), "train")
    (chairs / "FlyingChairs_train_val.txt").unlink()
    with pytest.raises(UserError, match="split_file=null"):
        build(spec_for("flyingchairs", chairs), "train")

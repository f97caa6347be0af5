"""``MoxingStore`` (``moxing.file``, ModelArts) under the data cache, with the moxing stand-in of tests/support.

moxing lists no ETag, so the cache cannot tell a changed object of the same size from its MD5: the store gives
the object's modification time (``mox.file.stat(url).mtime_nsec``) as its version instead.
"""

import importlib.util
import os
from pathlib import Path

import pytest

from pwcflow.config.compose import compose_group
from pwcflow.storage.cache import localize
from pwcflow.storage.moxing_io import MoxingStore

STANDIN = Path(__file__).resolve().parents[1] / "support" / "standins" / "moxing" / "file.py"


@pytest.fixture
def mox_file(tmp_path, monkeypatch):
    """The stand-in ``moxing.file`` loaded under a private name (``import moxing`` stays unresolvable)."""
    spec = importlib.util.spec_from_file_location("_moxing_file_standin", str(STANDIN))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setenv("MOXING_STANDIN_ROOT", str(tmp_path / "obs"))
    return module


def _copies(tmp_path) -> int:
    calls = (tmp_path / "obs" / ".calls").read_text().splitlines()
    return sum(1 for c in calls if c.startswith("copy obs://"))


def test_a_changed_file_of_the_same_size_is_fetched_again(tmp_path, mox_file):
    data = tmp_path / "obs" / "bkt" / "data"
    (data / "sub").mkdir(parents=True)
    (data / "a.txt").write_bytes(b"AAAA")
    (data / "sub" / "b.txt").write_bytes(b"BB")
    cfg = compose_group("storage", "obs", {"cache_dir": str(tmp_path / "cache")})
    store = MoxingStore(mox_file, workers=2, cache_dir=str(tmp_path / "cache"))

    local = Path(localize("obs://bkt/data", cfg, "dataset", store=store))
    assert (local / "a.txt").read_bytes() == b"AAAA" and _copies(tmp_path) == 2
    localize("obs://bkt/data", cfg, "dataset", store=store)
    assert _copies(tmp_path) == 2  # unchanged: nothing fetched again

    (data / "a.txt").write_bytes(b"ZZZZ")  # same size, new content, a later modification time
    stat = os.stat(str(data / "a.txt"))
    os.utime(str(data / "a.txt"), ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    localize("obs://bkt/data", cfg, "dataset", store=store)
    assert (local / "a.txt").read_bytes() == b"ZZZZ"
    assert _copies(tmp_path) == 3  # only the changed file
    assert (local / "sub" / "b.txt").read_bytes() == b"BB"


def test_objects_carry_a_version(tmp_path, mox_file):
    (tmp_path / "obs" / "bkt").mkdir(parents=True)
    (tmp_path / "obs" / "bkt" / "k.bin").write_bytes(b"xyz")
    store = MoxingStore(mox_file)
    head = store.head("bkt", "k.bin")
    listed = list(store.list("bkt", "k"))
    assert head.size == 3 and head.etag and listed == [head]

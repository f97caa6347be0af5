"""Output locations checked before the work (``files/preflight.py``)."""

import pytest
from support.faults import temps

from pwcflow.errors import UserError
from pwcflow.files import preflight


def test_preflight_refuses_early(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a folder"):
        preflight.preflight_file(str(tmp_path), "out")
    with pytest.raises(UserError, match="must end with .flo"):
        preflight.preflight_file(str(tmp_path / "a.png"), "out", exts=(".flo",))
    with pytest.raises(UserError, match="is a file"):
        preflight.preflight_dir(str(tmp_path / "f"), "out")
    with pytest.raises(UserError, match="is a file, not a folder"):
        preflight.preflight_file(str(tmp_path / "f" / "g.flo"), "out")
    with pytest.raises(UserError, match="not enough space"):
        preflight.preflight_dir(str(tmp_path / "new"), "out", need=1 << 60)
    assert preflight.preflight_dir(str(tmp_path / "new" / "deeper"), "out").endswith("deeper")
    assert not (tmp_path / "new").exists() and not temps(tmp_path)

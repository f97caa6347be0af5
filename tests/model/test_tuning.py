"""What a graph is tuned for (``model/tuning.py``): the backend, what ``auto`` picks, overrides, the log line."""

import logging

import pytest

from pwcflow.errors import UserError
from pwcflow.model import tuning
from pwcflow.model.pwcnet import ModelSpec


@pytest.mark.parametrize("backend", sorted(tuning.AUTO))
def test_auto_picks_per_backend_and_explicit_wins(monkeypatch, backend):
    monkeypatch.setattr(tuning, "backend", lambda: backend)
    cv, wp, split, shared = tuning.AUTO[backend]
    assert tuning.resolve("auto", "auto") == (cv, wp)
    monkeypatch.delenv(tuning.SHARED_ENV, raising=False)
    assert tuning.shared_heads() == shared
    monkeypatch.setenv(tuning.SHARED_ENV, "0" if shared else "1")
    assert tuning.shared_heads() != shared
    assert tuning.resolve("reference", "auto") == ("reference", wp)
    assert tuning.resolve("fused", "reference") == ("fused", "reference")
    monkeypatch.delenv(tuning.SPLIT_ENV, raising=False)
    assert (tuning.default_conv_split_bytes() > 0) == split
    monkeypatch.setenv(tuning.SPLIT_ENV, "0")
    assert tuning.default_conv_split_bytes() == 0
    with pytest.raises(ValueError):
        tuning.resolve("bogus", "auto")


def test_eigen_and_onednn_differ_where_measured():
    assert tuning.AUTO["onednn"] == ("fused", "fused", True, False)
    assert tuning.AUTO["eigen"][2:] == (False, True)  # the split only pays under oneDNN, sharing only under Eigen


def test_bad_split_env_is_one_line(monkeypatch):
    monkeypatch.setenv(tuning.SPLIT_ENV, "lots")
    with pytest.raises(UserError, match=tuning.SPLIT_ENV):
        tuning.default_conv_split_bytes()
    monkeypatch.setenv(tuning.SHARED_ENV, "yes")
    with pytest.raises(UserError, match=tuning.SHARED_ENV):
        tuning.shared_heads()


def test_choice_is_logged_when_the_graph_is_built(caplog):
    from pwcflow.model.pwcnet import pwcnet
    from pwcflow.tf1 import tf

    spec = ModelSpec(name="sm-6-2", dense=False, context_all_levels=False)
    with caplog.at_level(logging.INFO, logger="pwcflow.model"), tf.Graph().as_default():
        pwcnet(tf.zeros((1, 2, 64, 128, 3)), spec)
    line = [r.getMessage() for r in caplog.records if "cost volume" in r.getMessage()]
    assert len(line) == 1 and "(auto)" in line[0] and tuning.backend() in line[0]
    assert tuning.resolve("auto", "auto")[0] in line[0]

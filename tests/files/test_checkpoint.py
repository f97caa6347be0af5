"""Checkpoint layout owner and atomic writers: step, state file, integrity, resume fallback."""

import logging
import os

import numpy as np
import pytest

from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.tf1 import tf


def _save_steps(folder: str, steps, keep=5):
    """Save a small two-variable model at ``steps``; return the prefixes."""
    graph = tf.Graph()
    with graph.as_default():
        with tf.variable_scope("pwcnet"):
            a = tf.get_variable("a", initializer=np.arange(20000, dtype=np.float32))
            tf.get_variable("b", initializer=np.ones([3, 3], np.float32))
        saver = tf.train.Saver(max_to_keep=None)
        bump = tf.assign_add(a, tf.ones_like(a))
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            out = []
            for step in steps:
                sess.run(bump)
                out.append(checkpoint.save_atomic(sess, saver, folder, step, keep=keep))
    return out


def test_step_of_one_rule():
    assert checkpoint.step_of("/x/pwcnet.ckpt-595000") == 595000
    assert checkpoint.step_of("/x/pwcnet.ckpt") == 0
    from pwcflow.eval import step_of  # the old name still works and is the same function
    assert step_of is checkpoint.step_of


def test_state_file_one_writer_and_keep(tmp_path):
    prefixes = _save_steps(str(tmp_path), [10, 20, 30], keep=2)
    assert checkpoint.read_state(str(tmp_path)) == prefixes[1:]
    text = (tmp_path / "checkpoint").read_text()
    assert text.splitlines()[0] == 'model_checkpoint_path: "pwcnet.ckpt-30"'
    assert checkpoint.named_in_state(text) == "pwcnet.ckpt-30"
    assert not (tmp_path / "pwcnet.ckpt-10.index").exists()
    assert checkpoint.discard_after(str(tmp_path), 25) == prefixes[1]
    assert checkpoint.read_state(str(tmp_path)) == [prefixes[1]]


def test_complete_files_and_order():
    names = ["d/p-5.index", "d/p-5.data-00000-of-00002", "d/p-5.data-00001-of-00002", "d/p-7.index"]
    assert checkpoint.complete_files(names, "d/p-5")[-1] == "d/p-5.index"
    assert checkpoint.complete_files(names[:2] + names[3:], "d/p-5") == []
    assert checkpoint.complete_files(names, "d/p-7") == []
    assert checkpoint.newest_first(["a-1", "a-30", "a-2"]) == ["a-30", "a-2", "a-1"]
    assert checkpoint.newest_first(["a-1", "a-30", "a-2"], named="a-2")[0] == "a-2"


@pytest.mark.parametrize("damage", ["truncate", "flip", "remove_data", "remove_index"])
def test_verify_detects_damage(tmp_path, damage):
    (prefix,) = _save_steps(str(tmp_path), [5])
    checkpoint.verify(prefix)
    data = prefix + ".data-00000-of-00001"
    if damage == "truncate":
        with open(data, "r+b") as fh:
            fh.truncate(os.path.getsize(data) // 2)
    elif damage == "flip":
        raw = bytearray(open(data, "rb").read())
        raw[len(raw) // 3] ^= 0xFF
        open(data, "wb").write(bytes(raw))
    else:
        os.remove(data if damage == "remove_data" else prefix + ".index")
    assert checkpoint.problem(prefix)
    with pytest.raises(UserError, match="checkpoint .*pwcnet.ckpt-5 is damaged"):
        checkpoint.verify(prefix)


def test_latest_intact_falls_back_with_warning(tmp_path, caplog):
    prefixes = _save_steps(str(tmp_path), [10, 20, 30])
    assert checkpoint.latest_intact(str(tmp_path)) == prefixes[-1]
    data = prefixes[-1] + ".data-00000-of-00001"
    with open(data, "r+b") as fh:
        fh.truncate(100)
    with caplog.at_level(logging.WARNING, logger="pwcflow"):
        assert checkpoint.latest_intact(str(tmp_path)) == prefixes[1]
    assert "pwcnet.ckpt-30" in caplog.text and "damaged" in caplog.text
    assert checkpoint.latest_intact(str(tmp_path / "none")) is None


def test_resume_policy_skips_a_damaged_newest_checkpoint(tmp_path, caplog):
    from pwcflow.training.resume import CheckpointPolicy

    run = tmp_path / "run"
    prefixes = _save_steps(str(run / "checkpoints"), [2, 4])
    (run / "checkpoints" / ".tmp-killed").mkdir()
    os.remove(prefixes[-1] + ".data-00000-of-00001")
    policy = CheckpointPolicy(str(run), keep=5, is_chief=True, sync=None, resume=True)
    with caplog.at_level(logging.WARNING, logger="pwcflow"):
        assert policy.find_resume() == prefixes[0]
    assert "pwcnet.ckpt-4" in caplog.text
    assert not (run / "checkpoints" / ".tmp-killed").exists()
    refuse = CheckpointPolicy(str(run), keep=5, is_chief=True, sync=None, resume=False)
    with pytest.raises(UserError, match="already has checkpoints"):
        refuse.find_resume()

"""Checkpoints: resolve paths, check compatibility, restore by name, atomic save, resume.

A tfoptflow checkpoint (prefix like ``pwcnet.ckpt-595000`` or a directory holding a
``checkpoint`` file) restores unchanged; optimizer slots and step counters in it are ignored.
"""

import json
import os
import shutil
import tempfile
from typing import Dict, List, Optional

from pwcflow.errors import UserError
from pwcflow.tf1 import tf

BEST_FILE = "best.json"


def resolve(path: str) -> str:
    """Return a checkpoint prefix for a prefix, a checkpoint directory or a training run dir."""
    if not path:
        raise UserError("no checkpoint given: set ckpt=PATH (a checkpoint prefix or directory)")
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(path):
        for sub in ("checkpoints/best", "checkpoints", ""):
            folder = os.path.join(path, sub) if sub else path
            if os.path.isfile(os.path.join(folder, "checkpoint")):
                prefix = tf.train.latest_checkpoint(folder)
                if prefix and os.path.exists(prefix + ".index"):
                    return prefix
        raise UserError("no checkpoint found in directory %s (expected a 'checkpoint' file)" % path)
    if os.path.exists(path + ".index"):
        return path
    if path.endswith((".index", ".meta")) or ".data-" in path:
        stem = path.rsplit(".", 1)[0] if ".data-" not in path else path.split(".data-")[0]
        if os.path.exists(stem + ".index"):
            return stem
    raise UserError("checkpoint not found: %s" % path)


def stored_shapes(prefix: str) -> Dict[str, List[int]]:
    """Variable name -> shape of everything stored in a checkpoint."""
    try:
        return dict(tf.train.list_variables(prefix))
    except Exception as exc:  # corrupt or unreadable index/data
        raise UserError("cannot read checkpoint %s: %s" % (prefix, str(exc).splitlines()[0]))


def model_variables(scope: str = "pwcnet") -> List[tf.Variable]:
    """The network's variables (no optimizer slots, no step counter)."""
    return [v for v in tf.global_variables() if v.op.name.startswith(scope + "/") and "/Adam" not in v.op.name
            and "/Momentum" not in v.op.name and "/ExponentialMovingAverage" not in v.op.name]


def check_compatible(prefix: str, variables: List[tf.Variable], model_name: str) -> None:
    """Fail with one line if the checkpoint lacks a variable or stores another shape."""
    stored = stored_shapes(prefix)
    other = "sm-6-2" if model_name.startswith("lg") else "lg-6-2"
    hint = " (it looks like a %s checkpoint: set model=%s)" % (other, other) if _looks_like(stored, other) else ""
    missing = [v.op.name for v in variables if v.op.name not in stored]
    if missing:
        raise UserError(
            "checkpoint %s does not match model=%s: %d variables missing, e.g. %s%s"
            % (prefix, model_name, len(missing), missing[0], hint)
        )
    for v in variables:
        want = v.get_shape().as_list()
        if list(stored[v.op.name]) != want:
            raise UserError(
                "checkpoint %s does not match model=%s: %s has shape %s, expected %s%s"
                % (prefix, model_name, v.op.name, stored[v.op.name], want, hint)
            )


def _looks_like(stored: Dict[str, List[int]], variant: str) -> bool:
    """Guess the variant from the level-6 context network (only lg has one) and dense widths."""
    if "pwcnet/predict_flow/conv6_1/kernel" not in stored:
        return False
    dense = stored["pwcnet/predict_flow/conv6_1/kernel"][2] != 128
    return dense if variant.startswith("lg") else not dense


def restore(sess: tf.Session, prefix: str, variables: List[tf.Variable], model_name: str,
            saver: Optional[tf.train.Saver] = None) -> None:
    """Restore ``variables`` by name from ``prefix`` after checking compatibility.

    Pass a ``saver`` over exactly ``variables`` (by name) when the graph is already finalized.
    """
    check_compatible(prefix, variables, model_name)
    try:
        (saver or tf.train.Saver(var_list={v.op.name: v for v in variables})).restore(sess, prefix)
    except tf.errors.OpError as exc:  # truncated or corrupt .data file
        raise UserError("cannot read checkpoint %s (corrupt or truncated): %s"
                        % (prefix, (str(exc).strip().splitlines() or [""])[0]))


def save_atomic(sess: tf.Session, saver: tf.train.Saver, ckpt_dir: str, step: int, keep: Optional[int] = 5,
                name: str = "pwcnet.ckpt") -> str:
    """Write a checkpoint into a temp dir, move its files in, then update ``checkpoint`` last.

    A crash at any point leaves the previous ``checkpoint`` file pointing at complete files.
    Keeps the newest ``keep`` checkpoints in ``ckpt_dir`` (``saver`` should have max_to_keep=None).
    """
    os.makedirs(ckpt_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=ckpt_dir)
    try:
        tmp_prefix = saver.save(sess, os.path.join(tmp, name), global_step=step,
                                write_meta_graph=False, write_state=False)
        final_prefix = os.path.join(ckpt_dir, os.path.basename(tmp_prefix))
        for fname in sorted(os.listdir(tmp), key=lambda f: f.endswith(".index")):
            os.replace(os.path.join(tmp, fname), os.path.join(ckpt_dir, fname))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _write_state(ckpt_dir, final_prefix, keep)
    return final_prefix


def remove_stale_temps(folder: str) -> None:
    """Delete ``.tmp-*`` leftovers of a save that a killed process never finished (never a real checkpoint)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        if name.startswith(".tmp-"):
            path = os.path.join(folder, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def step_of(prefix: str) -> int:
    """The global step in a checkpoint prefix such as ``.../pwcnet.ckpt-1000``."""
    return int(prefix.rsplit("-", 1)[1])


def discard_after(ckpt_dir: str, step: int) -> Optional[str]:
    """Delete checkpoints newer than ``step`` and point ``checkpoint`` at the newest left (returned)."""
    state = tf.train.get_checkpoint_state(ckpt_dir)
    if not state:
        return None
    prefixes = [p if os.path.isabs(p) else os.path.join(ckpt_dir, p) for p in state.all_model_checkpoint_paths]
    keep = [p for p in prefixes if step_of(p) <= step]
    for bad in prefixes:
        if bad not in keep:
            for fname in os.listdir(ckpt_dir):
                if fname.startswith(os.path.basename(bad) + "."):
                    os.remove(os.path.join(ckpt_dir, fname))
    if not keep:
        os.remove(os.path.join(ckpt_dir, "checkpoint"))
        return None
    lines = ['model_checkpoint_path: "%s"' % os.path.basename(keep[-1])]
    lines += ['all_model_checkpoint_paths: "%s"' % os.path.basename(p) for p in keep]
    write_text_atomic(os.path.join(ckpt_dir, "checkpoint"), "\n".join(lines) + "\n")
    return keep[-1]


def _write_state(ckpt_dir: str, newest: str, keep: Optional[int]) -> None:
    """Update the ``checkpoint`` state file atomically and drop checkpoints beyond ``keep``."""
    state = tf.train.get_checkpoint_state(ckpt_dir)
    prefixes = [p for p in (state.all_model_checkpoint_paths if state else []) if p != newest]
    prefixes = [p if os.path.isabs(p) else os.path.join(ckpt_dir, p) for p in prefixes]
    prefixes = [p for p in prefixes if os.path.exists(p + ".index")] + [newest]
    if keep:
        for old in prefixes[:-keep]:
            for fname in os.listdir(ckpt_dir):
                if fname.startswith(os.path.basename(old) + "."):
                    os.remove(os.path.join(ckpt_dir, fname))
        prefixes = prefixes[-keep:]
    lines = ['model_checkpoint_path: "%s"' % os.path.basename(newest)]
    lines += ['all_model_checkpoint_paths: "%s"' % os.path.basename(p) for p in prefixes]
    write_text_atomic(os.path.join(ckpt_dir, "checkpoint"), "\n".join(lines) + "\n")


def write_text_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file and rename (readers never see half a file)."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: str, data) -> None:
    """``write_text_atomic`` for JSON."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str):
    """JSON content of ``path``, or None if it does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)

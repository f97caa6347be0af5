"""Checkpoints, the one owner of their layout: naming, step, ``checkpoint`` state file, resolve order,
integrity, restore by name, atomic save, resume.

A tfoptflow checkpoint (prefix like ``pwcnet.ckpt-595000`` or a directory holding a
``checkpoint`` file) restores unchanged; optimizer slots and step counters in it are ignored.

Layout: ``<dir>/pwcnet.ckpt-<step>.index`` + ``.data-NNNNN-of-NNNNN`` (+ ``.meta``) and a ``checkpoint``
state file naming the newest (relative names, so a dir can move). A training run dir holds
``checkpoints/`` and ``checkpoints/best/``; ``RESOLVE_ORDER`` is where a dir is searched.
"""

import logging
import os
import re
import shutil
from typing import Dict, Iterable, List, Optional

from pwcflow.errors import UserError
from pwcflow.files.atomic import TMP_PREFIX, atomic_write_text, read_json, remove_stale, temp_dir
from pwcflow.tf1 import tf

__all__ = ["BEST_FILE", "STATE_FILE", "NAME", "RESOLVE_ORDER", "resolve", "step_of", "write_state", "read_state",
           "state_problem", "on_disk",
           "named_in_state", "complete_files", "newest_first", "verify", "problem", "latest_intact",
           "stored_shapes", "model_variables", "check_compatible", "restore", "save_atomic", "discard_after",
           "remove_stale", "read_json", "is_checkpoint_file"]

log = logging.getLogger(__name__)

BEST_FILE = "best.json"
STATE_FILE = "checkpoint"
NAME = "pwcnet.ckpt"
RESOLVE_ORDER = ("checkpoints/best", "checkpoints", "")  # a run dir's best, its latest, the dir itself
_PART = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")
_STEP = re.compile(r"-(\d+)$")


# -- naming and the state file -------------------------------------------------------------------------
def step_of(prefix: str) -> int:
    """The global step at the end of a checkpoint prefix such as ``.../pwcnet.ckpt-1000`` (0 when none)."""
    match = _STEP.search(str(prefix))
    return int(match.group(1)) if match else 0


def strip_part(path: str) -> str:
    """A checkpoint file name or key without its ``.index``/``.meta``/``.data-*`` suffix."""
    return _PART.sub("", path)


def is_checkpoint_file(name: str) -> bool:
    """True for ``.index``, ``.meta`` and ``.data-*`` files of a checkpoint."""
    return _PART.search(name) is not None


def write_state(ckpt_dir: str, prefixes: List[str]) -> None:
    """The one writer of a ``checkpoint`` state file: ``prefixes`` oldest first, the last one is current."""
    names = [os.path.basename(p) for p in prefixes]
    lines = ['model_checkpoint_path: "%s"' % names[-1]]
    lines += ['all_model_checkpoint_paths: "%s"' % n for n in names]
    atomic_write_text(os.path.join(ckpt_dir, STATE_FILE), "\n".join(lines) + "\n")


def state_problem(ckpt_dir: str) -> Optional[str]:
    """Why ``ckpt_dir``'s ``checkpoint`` state file cannot be used (empty, not text, names nothing, missing
    beside checkpoints), or None (fine, or no state file and no checkpoint)."""
    path = os.path.join(ckpt_dir, STATE_FILE)
    if not os.path.isfile(path):  # a kill before the first state file: the checkpoints still count
        return "missing" if on_disk(ckpt_dir) else None
    if os.path.getsize(path) == 0:
        return "empty"
    try:
        state = tf.train.get_checkpoint_state(ckpt_dir)
    except Exception as exc:  # UnicodeDecodeError, ValueError ("Invalid checkpoint state"), OSError
        return "unreadable: %s" % (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if not state or not state.model_checkpoint_path:
        return "names no checkpoint"
    return None


def on_disk(ckpt_dir: str) -> List[str]:
    """Absolute prefixes of the checkpoints whose ``.index`` lies in ``ckpt_dir``, oldest (lowest step) first."""
    names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
    prefixes = [os.path.join(ckpt_dir, n[:-len(".index")]) for n in names if n.endswith(".index")
                and n.startswith(NAME) and not n.startswith(TMP_PREFIX)]
    return sorted(prefixes, key=lambda p: (step_of(p), p))


def read_state(ckpt_dir: str) -> List[str]:
    """Absolute prefixes listed in ``ckpt_dir``'s state file, oldest first, the current one last ([] if none).

    A damaged state file (``state_problem``) lists nothing: then the checkpoints on disk are listed instead
    (``on_disk``), so that a rerun neither crashes on it nor starts over beside intact checkpoints.
    """
    if state_problem(ckpt_dir) is not None:
        return on_disk(ckpt_dir)
    state = tf.train.get_checkpoint_state(ckpt_dir) if os.path.isdir(ckpt_dir) else None
    if not state or not state.model_checkpoint_path:
        return []
    absolute = [p if os.path.isabs(p) else os.path.join(ckpt_dir, p)
                for p in list(state.all_model_checkpoint_paths) + [state.model_checkpoint_path]]
    out: List[str] = []
    for p in absolute:
        if p in out:
            out.remove(p)
        out.append(p)
    return out


def named_in_state(text: Optional[str]) -> Optional[str]:
    """The basename a ``checkpoint`` state file's text names as current (None if it names none)."""
    match = re.search(r'^model_checkpoint_path:\s*"([^"]+)"', text or "", re.MULTILINE)
    return os.path.basename(match.group(1).replace("\\", "/")) if match else None


def complete_files(names: Iterable[str], prefix: str) -> List[str]:
    """The files of checkpoint ``prefix`` among ``names`` (data shards, ``.meta``, ``.index`` last) if its
    ``.index`` and every data shard are there, else []."""
    names = set(names)
    data = [k for k in names if k.startswith(prefix + ".data-")]
    if prefix + ".index" not in names or not data:
        return []
    shards = int(re.search(r"-of-(\d+)$", data[0]).group(1))
    need = ["%s.data-%05d-of-%05d" % (prefix, i, shards) for i in range(shards)]
    if any(k not in names for k in need):
        return []
    extra = [prefix + ".meta"] if prefix + ".meta" in names else []
    return need + extra + [prefix + ".index"]


def newest_first(prefixes: Iterable[str], named: Optional[str] = None) -> List[str]:
    """Prefixes by descending step; the one whose basename is ``named`` (a state file's current) first."""
    ordered = sorted(prefixes, key=lambda p: (step_of(p), p))
    ordered.sort(key=lambda p: os.path.basename(p) == named)  # stable: the named one last
    return ordered[::-1]


# -- integrity -----------------------------------------------------------------------------------------
def problem(prefix: str) -> Optional[str]:
    """Why checkpoint ``prefix`` cannot be restored (a file missing, truncated or corrupt), or None.

    Reads every stored tensor, so a truncated or damaged ``.data`` file is caught (CRC-checked by TF).
    """
    folder, stem = os.path.split(os.path.abspath(prefix))
    names = os.listdir(folder) if os.path.isdir(folder) else []
    if stem + ".index" not in names:
        return "%s.index is missing" % stem
    if not complete_files(names, stem):
        return "data files of %s are missing" % stem
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as exc:  # DataLossError, OutOfRangeError, NotFoundError, ...
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def verify(prefix: str) -> None:
    """Raise a one-line ``UserError`` unless every file of checkpoint ``prefix`` is there and readable."""
    why = problem(prefix)
    if why is not None:
        raise UserError("checkpoint %s is damaged: %s" % (prefix, why))


def latest_intact(ckpt_dir: str, strict: bool = False) -> Optional[str]:
    """The state file's current checkpoint if intact, else the newest intact one it lists (warning about
    each damaged one), else the newest intact one on disk it does not list; None when the dir has nothing
    intact. A damaged state file counts as none: the checkpoints on disk are listed and verified instead,
    with a warning naming the file. ``strict``: when
    there are checkpoints and none is intact, refuse (one line naming the newest) instead of returning None."""
    damaged_state = state_problem(ckpt_dir)
    if damaged_state is not None:
        log.warning("checkpoint state file %s cannot be used (%s): looking for intact checkpoints in %s instead",
                    os.path.join(ckpt_dir, STATE_FILE), damaged_state, ckpt_dir)
    listed = read_state(ckpt_dir)
    named = os.path.basename(listed[-1]) if listed and damaged_state is None else None
    damaged = []
    unlisted = [p for p in newest_first(on_disk(ckpt_dir)) if p not in listed]  # a state file naming too few
    for prefix in newest_first(listed, named) + unlisted:
        why = problem(prefix)
        if why is None:
            return prefix
        log.warning("skipping damaged checkpoint %s (%s); falling back to an older one", prefix, why)
        damaged.append((prefix, why))
    if strict and damaged:
        raise UserError("no intact checkpoint to resume from in %s: %s is damaged (%s); rerun with another "
                        "run_name to start afresh" % ((ckpt_dir,) + damaged[0]))
    if damaged_state is not None:
        log.warning("no checkpoint in %s: starting afresh from step 0", ckpt_dir)
    return None


# -- resolve and restore -------------------------------------------------------------------------------
def resolve(path: str) -> str:
    """Return a checkpoint prefix for a prefix, a checkpoint directory or a training run dir."""
    if not path:
        raise UserError("no checkpoint given: set ckpt=PATH (a checkpoint prefix or directory)")
    path = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(path):
        for sub in RESOLVE_ORDER:
            folder = os.path.join(path, sub) if sub else path
            if os.path.isfile(os.path.join(folder, STATE_FILE)):
                listed = read_state(folder)  # a damaged state file: the newest checkpoint on disk
                if listed and os.path.exists(listed[-1] + ".index"):
                    return listed[-1]
        raise UserError("no checkpoint found in directory %s (expected a 'checkpoint' file)" % path)
    if os.path.exists(path + ".index"):
        return path
    if is_checkpoint_file(path) and os.path.exists(strip_part(path) + ".index"):
        return strip_part(path)
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
                name: str = NAME) -> str:
    """Write a checkpoint into a temp dir, move its files in, then update ``checkpoint`` last.

    A crash at any point leaves the previous ``checkpoint`` file pointing at complete files.
    Keeps the newest ``keep`` checkpoints in ``ckpt_dir`` (``saver`` should have max_to_keep=None).
    """
    os.makedirs(ckpt_dir, exist_ok=True)
    tmp = temp_dir(ckpt_dir)
    try:
        tmp_prefix = saver.save(sess, os.path.join(tmp, name), global_step=step,
                                write_meta_graph=False, write_state=False)
        final_prefix = os.path.join(ckpt_dir, os.path.basename(tmp_prefix))
        for fname in sorted(os.listdir(tmp), key=lambda f: f.endswith(".index")):
            os.replace(os.path.join(tmp, fname), os.path.join(ckpt_dir, fname))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prefixes = [p for p in read_state(ckpt_dir) if p != final_prefix and os.path.exists(p + ".index")]
    prefixes.append(final_prefix)
    if keep:
        _delete(ckpt_dir, prefixes[:-keep])
        prefixes = prefixes[-keep:]
    write_state(ckpt_dir, prefixes)
    return final_prefix


def discard_after(ckpt_dir: str, step: int) -> Optional[str]:
    """Delete checkpoints newer than ``step`` and point ``checkpoint`` at the newest left (returned)."""
    prefixes = read_state(ckpt_dir)
    if not prefixes:
        return None
    keep = [p for p in prefixes if step_of(p) <= step]
    _delete(ckpt_dir, [p for p in prefixes if p not in keep])
    if not keep:
        if os.path.exists(os.path.join(ckpt_dir, STATE_FILE)):
            os.remove(os.path.join(ckpt_dir, STATE_FILE))
        return None
    write_state(ckpt_dir, keep)
    return keep[-1]


def _delete(ckpt_dir: str, prefixes: List[str]) -> None:
    """Remove every file of the checkpoints ``prefixes`` from ``ckpt_dir``."""
    for old in prefixes:
        for fname in os.listdir(ckpt_dir):
            if fname.startswith(os.path.basename(old) + "."):
                os.remove(os.path.join(ckpt_dir, fname))


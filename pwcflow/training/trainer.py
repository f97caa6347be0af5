"""The training run: ``prepare`` (checks before any graph is built) and the ``Trainer`` loop: step, display,
pictures, save, validate, SIGTERM/Ctrl-C."""

import dataclasses
import functools
import logging
import os
import signal
import sys
import time
from typing import List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from pwcflow.config import commands
from pwcflow.data import datasets, pipeline, viz
from pwcflow.device import backend, distribute
from pwcflow.errors import UserError
from pwcflow.files import checkpoint
from pwcflow.files.tensorboard import Board, emit, interactive, status_line
from pwcflow.inference.predictor import predict_padded
from pwcflow.model.pwcnet import ModelSpec
from pwcflow.storage import cache, obs, runsync
from pwcflow.tf1 import tf
from pwcflow.training.graph import TrainGraph
from pwcflow.training.resume import CheckpointPolicy
from pwcflow.training.validation import Validation, score_shared, sums

log = logging.getLogger("pwcflow.train")


@dataclasses.dataclass(frozen=True)
class Plan:
    """What ``prepare`` found: the typed config, the (local) data set and its training/validation pairs."""

    cfg: commands.TrainConfig
    ds: datasets.DatasetSpec
    train: List[datasets.Sample]
    val: List[datasets.Sample]


def prepare(cfg: commands.TrainConfig) -> Plan:
    """Check the device and the data set (the config was checked at compose time) before any graph is built."""
    backend.prepare(cfg.device)
    ds_spec = cfg.dataset
    if ds_spec.root and obs.is_remote(ds_spec.root):
        ds_spec = dataclasses.replace(ds_spec, root=cache.localize(ds_spec.root, cfg.storage, "dataset"))
    train_samples = datasets.build(ds_spec, "train")
    if not train_samples:
        raise UserError("data set %s has no training pairs" % ds_spec.name)
    h, w = train_samples[0].load()[0].shape[:2]
    crop = cfg.train.crop
    if crop[0] > h or crop[1] > w:
        raise UserError("bad setting train.crop: %dx%d (h x w) is larger than the %dx%d frames of %s"
                        % (crop[0], crop[1], h, w, train_samples[0].where))
    return Plan(cfg, ds_spec, train_samples, _split_or_empty(ds_spec, "val"))


def _split_or_empty(ds_spec, split: str) -> List[datasets.Sample]:
    try:
        return datasets.build(ds_spec, split)
    except datasets.EmptySplit:
        return []


def platform_resume(mirror: Optional[runsync.RunSync], policy: CheckpointPolicy, resume: bool,
                    latest: Optional[str]) -> Optional[str]:
    """Resume from the job output's OBS copy (``runsync.platform_mirror``) when it holds a newer complete
    checkpoint than the run dir, so the platform's upload never replaces the pointers of a run with later steps
    by a fresh run's."""
    if mirror is None:
        return latest
    if not resume:
        found = mirror.remote_latest(policy.ckpt_dir)
        if found:
            raise UserError("the job's output %s already has checkpoints (step %d): rerun with resume=true or "
                            "choose another output" % (mirror.output_url, checkpoint.step_of(found[0])))
        return latest
    pulled = mirror.pull_latest_checkpoint(policy.ckpt_dir, checkpoint.step_of(latest) if latest else -1)
    if pulled:
        mirror.pull(["metrics.json"])
        mirror.pull_latest_checkpoint(policy.best_dir)
    return pulled or latest


def pictures(g: TrainGraph, plan: Plan, step: int, board: Board) -> None:
    """Frame 1, prediction and ground truth of the first validation (else training) pair, through the
    validation tower: a separate run, so every training step fetches the same list (one NPU graph)."""
    sample = (plan.val or plan.train)[0]
    _, x, y, _ = next(iter(pipeline.eval_batches([sample], batch=1)))
    if y is None:
        return
    flow = predict_padded(g.sess, g.x_val, [g.flow_val], x, plan.cfg.model.multiple)[0]
    scale = float(np.abs(y[0]).max()) or None
    rgb = (x[0, 0] * 255).astype(np.uint8)
    board.image(step, "train/frame1_prediction_groundtruth",
                viz.side_by_side([rgb, viz.flow_to_color(flow[0], scale), viz.flow_to_color(y[0], scale)]))


def predict_val(g: TrainGraph, multiple: int, x: np.ndarray) -> np.ndarray:
    """Flows for ``x`` through the validation tower (the same pad-predict-crop path as eval)."""
    return predict_padded(g.sess, g.x_val, [g.flow_val], x, multiple)[0]


def warm_up(g: TrainGraph, plan: Plan, engine) -> None:
    """Several workers: run the validation graph and its all-reduce once before step 1, so that the first
    validation includes no graph compilation on any one worker (and the collective is set up)."""
    if engine.num_workers < 2:
        return
    sample = (plan.val or plan.train)[:1]
    if sample:
        sums(functools.partial(predict_val, g, plan.cfg.model.multiple), sample)
    g.sess.run(g.val_totals, {g.val_sums: np.zeros(4)})


def diverged(policy: CheckpointPolicy, loss: float, step: int) -> UserError:
    """The loss of ``step`` came from the weights of ``step - 1``: drop checkpoints from then on."""
    kept = policy.discard_after(step - 2)
    return UserError("loss became %s at step %d: stopped; last good checkpoint: %s"
                     % (loss, step, kept or "none (lower the learning rate or check the data)"))


class Trainer:
    """One training run: graph, session and loop; validation and checkpoint policy are their own units."""

    def __init__(self, plan: Plan, run_dir: str):
        cfg = plan.cfg
        self.cfg, self.plan, self.run_dir = cfg, plan, run_dir
        self.spec: ModelSpec = cfg.model
        self._stop = False
        self.engine = distribute.create(cfg.device)
        sync = runsync.run_sync(cfg.storage, run_dir)
        self.policy = CheckpointPolicy(run_dir, cfg.train.keep_checkpoints, self.engine.is_chief, sync, cfg.resume)
        # a new-style ModelArts job without pre-download: its train_url starts empty, its OBS copy does not
        self.platform = runsync.platform_mirror(cfg.storage, run_dir) if sync is None and self.engine.is_chief \
            else None
        self.validation = Validation(run_dir)
        self._validated: Optional[int] = None  # the step this process last validated

    # -- state -------------------------------------------------------------------------------------
    def restore(self, latest: Optional[str]) -> None:
        """Resume everything (weights, optimizer slots, step) or load ``init_ckpt`` weights."""
        if latest:
            checkpoint.check_compatible(latest, self.g.model_vars, self.spec.name)
            self.g.saver.restore(self.g.sess, latest)
            log.info("resumed from %s", latest)
        elif self.cfg.init_ckpt:
            prefix = checkpoint.resolve(cache.localize(self.cfg.init_ckpt, self.cfg.storage, "checkpoint"))
            checkpoint.restore(self.g.sess, prefix, self.g.model_vars, self.spec.name, self.g.init_saver)
            log.info("initialised weights from %s", prefix)

    def save(self, step: int) -> Optional[str]:
        """Atomic checkpoint of everything (chief only), mirrored when a run mirror is set."""
        return self.policy.save(self.g.sess, self.g.saver, step)

    def validate(self, step: int, board: Board) -> None:
        """Score the held-out split and a slice of the training split on every worker (each its 1/N of the
        pairs, the sums added up in one all-reduce); the chief updates metrics.json and the best checkpoint."""
        t, e, g = self.cfg.train, self.engine, self.g
        val_epe, train_epe, line = score_shared(
            functools.partial(predict_val, g, self.spec.multiple), self.plan.val, self.plan.train,
            (t.val_pairs, t.train_eval_pairs), e.rank, e.num_workers,
            lambda sums: g.sess.run(g.val_totals, {g.val_sums: sums}))
        log.info("validation at step %d: %s", step, line)
        self._validated = step
        if e.is_chief:
            self.validation.record(step, val_epe, train_epe, lambda s: self.policy.save_best(g.sess, g.best_saver, s))
            board.scalars(step, dict(self.validation.scores()))

    # -- loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        """Train to ``train.iterations``, resuming if possible; Ctrl-C/SIGTERM save and exit."""
        latest = platform_resume(self.platform, self.policy, self.cfg.resume, self.policy.find_resume())
        self.validation.reload()
        self.g = TrainGraph(self.plan, self.engine, checkpoint.step_of(latest) if latest else 0)
        try:
            self.restore(latest)
            self.engine.after_restore(self.g.sess)  # ranks agree on weights, step, slots and loss scale
            warm_up(self.g, self.plan, self.engine)
            self._loop()
        finally:  # close the session (and the input pipeline's threads) on every exit path
            self.g.sess.close()

    def _loop(self) -> None:
        """The training loop proper (session built and restored); ``step`` is ``global_step``, which advances on
        every step (``TrainGraph``), applied or skipped for overflow."""
        start, t = int(self.g.sess.run(self.g.step)), self.cfg.train
        board = Board(os.path.join(self.run_dir, "tb") if self.engine.is_chief else None)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        bar = tqdm(total=t.iterations, initial=start, desc="train", unit="step", dynamic_ncols=True, file=sys.stdout,
                   disable=not interactive())
        window: List[tuple] = []
        step, saved, self._start = start, start, start
        try:
            while step < t.iterations and not self._stop:
                t0 = time.time()
                step, out = self._step(step)
                seconds = time.time() - t0  # the step alone: saving, validation and pictures are not in sec/step
                if step == start + 1:
                    log.info("first step: %.1f s (graph compilation included; not in sec/step)", seconds)
                window.append(tuple(out[1:7]) + (None if step == start + 1 else seconds,))
                bar.update(1)
                if step % t.display_interval == 0 or step == t.iterations:
                    window = self._display(step, window, board)
                if step % t.image_interval == 0 and self.engine.is_chief:
                    pictures(self.g, self.plan, step, board)
                if step % t.save_interval == 0:
                    self.save(step)
                    saved = step
                if step % t.val_interval == 0:  # every worker: each scores its share
                    self.validate(step, board)
        except KeyboardInterrupt:
            self._stop = True
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, previous)
        self._finish(step, saved, board)

    def _step(self, step: int) -> Tuple[int, list]:
        """One training step; the fetch list is the same every step (one NPU graph); a non-finite loss stops."""
        try:
            out = self.g.sess.run(self.g.fetch)
        except tf.errors.OpError as exc:
            user = pipeline.as_user_error(exc)
            if user is None:
                raise
            raise user
        if not np.isfinite(out[1]):
            raise diverged(self.policy, out[1], step + 1)
        return step + 1, out

    def _finish(self, step: int, saved: int, board: Board) -> None:
        """Save what is unsaved, validate the last step, mirror, print the summary (or exit 130 when stopped)."""
        if saved != step:
            prefix = self.save(step)
            if self._stop:
                board.close()
                print("interrupted at step %d: checkpoint saved to %s; rerun the same command to resume"
                      % (step, prefix), file=sys.stderr)
                sys.exit(130)
        # every worker decides alike (several workers: from this process only; one: metrics.json may say done)
        if self._validated != step and (self.engine.num_workers > 1 or self.validation.metrics.get("step") != step):
            self.validate(step, board)
        board.close()
        self.policy.push()
        print(self.validation.summary(step, self.run_dir))

    def _on_sigterm(self, signum, frame) -> None:
        self._stop = True

    def _display(self, step: int, window: List[tuple], board: Board) -> List[tuple]:
        """The status line (chief) and TensorBoard scalars of the steps in ``window``; returns a new window."""
        t = self.cfg.train
        loss, epe, lr, unreg, decay = (float(np.mean([w[i] for w in window])) for i in range(5))
        loss_scale, timed = float(window[-1][5]), [w[6] for w in window if w[6] is not None]
        sec_step = float(np.mean(timed)) if timed else 0.0
        pairs = t.batch_size / sec_step if sec_step > 0 else 0.0
        # steps since this process started whose update the loss-scale optimizer skipped (overflow)
        skipped = 0 if self.g.applied is None else step - self._start - int(self.g.sess.run(self.g.applied))
        line = status_line(step, loss, epe, lr, pairs, sec_step, t.iterations - step, loss_scale=loss_scale,
                           skipped=skipped)
        if self.engine.is_chief:
            emit(line)  # the job's log (ModelZoo's grep/awk) gets the chief's lines only
        else:
            with open(os.path.join(self.run_dir, "rank%d.log" % self.engine.rank), "a") as fh:
                fh.write(line + "\n")
        board.scalars(step, {"train/loss": loss, "train/loss_unregularized": unreg, "train/weight_decay": decay,
                             "train/epe": epe, "train/lr": lr, "perf/sec_per_step": sec_step,
                             "perf/pairs_per_sec": pairs, "train/loss_scale": loss_scale,
                             "train/skipped_steps": float(skipped)})
        board.flush()
        return []

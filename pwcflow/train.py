"""``python -m pwcflow.train``: train PWC-Net on any data set and device with Hydra overrides only.

Run dir ``outputs/train/<run_name>``: ``checkpoints/`` (newest ``train.keep_checkpoints``),
``checkpoints/best/`` (best validation EPE), ``metrics.json``, ``tb/`` (TensorBoard), ``.hydra/``.
Rerunning the same command resumes from the newest complete checkpoint (``resume=true``).
"""

import dataclasses
import logging
import os
import signal
import sys
import time
from typing import Dict, List, Optional

import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from tqdm import tqdm

from pwcflow import cli, config, viz
from pwcflow import lr as lr_lib
from pwcflow.data import datasets, pipeline
from pwcflow.errors import UserError
from pwcflow.metrics import FlowMetrics
from pwcflow.model import losses
from pwcflow.model.pwcnet import ModelSpec, pwcnet
from pwcflow.predictor import pad_to_multiple
from pwcflow.runtime import checkpoint, device, distribute, outputs, storage
from pwcflow.runtime.summaries import Board, status_line
from pwcflow.tf1 import tf

log = logging.getLogger("pwcflow.train")
OPTIMIZERS = ("adam", "sgd")


def validate(cfg: DictConfig) -> Dict[str, object]:
    """Check every training setting and the data set before any graph is built; return plain values."""
    t = cfg.train
    for key in ("iterations", "batch_size", "display_interval", "save_interval", "val_interval", "image_interval",
                "keep_checkpoints"):
        config.number(t[key], "train.%s" % key, int, 1)
    for key in ("val_pairs", "train_eval_pairs", "loader_threads"):
        config.number(t[key], "train.%s" % key, int, 0)
    config.number(cfg.seed, "seed", int)
    crop = [config.number(c, "train.crop", int) for c in t.crop]
    config.check(len(crop) == 2 and all(c > 0 and c % 64 == 0 for c in crop), "train.crop",
                 "must be [height, width], positive multiples of 64, got %s" % list(t.crop))
    config.check(cfg.loss.kind in losses.KINDS, "loss.kind", "must be one of %s" % sorted(losses.KINDS))
    config.check(len(cfg.loss.alphas) == 5, "loss.alphas", "needs 5 weights (levels 6..2)")
    config.check(cfg.optimizer.name in OPTIMIZERS, "optimizer.name", "must be one of %s" % (OPTIMIZERS,))
    _check_optimization(cfg)
    spec = config.model_spec(cfg.model)
    device.prepare(cfg.device)
    ds_spec = datasets.spec_from_config(cfg.dataset)
    if ds_spec.root and storage.is_remote(ds_spec.root):
        ds_spec = dataclasses.replace(ds_spec, root=storage.localize(ds_spec.root, cfg.storage, "dataset"))
    train_samples = datasets.build(ds_spec, "train")
    if not train_samples:
        raise UserError("data set %s has no training pairs" % ds_spec.name)
    h, w = train_samples[0].load()[0].shape[:2]
    if crop[0] > h or crop[1] > w:
        raise UserError("bad setting train.crop: %dx%d (h x w) is larger than the %dx%d frames of %s"
                        % (crop[0], crop[1], h, w, train_samples[0].where))
    val_samples = _split_or_empty(ds_spec, "val")
    return {"spec": spec, "ds": ds_spec, "train": train_samples, "val": val_samples, "crop": tuple(crop)}


def _check_optimization(cfg: DictConfig) -> None:
    """Learning rates, optimizer and loss constants: numbers in their ranges, naming the key."""
    lr_lib.check(cfg.lr_schedule)
    o = cfg.optimizer
    if o.name == "adam":
        for key in ("beta1", "beta2"):
            config.number(o[key], "optimizer.%s" % key, float, 0.0, 1.0)
            config.check(float(o[key]) < 1.0, "optimizer.%s" % key, "must be below 1")
        config.number(o.epsilon, "optimizer.epsilon", float, 0.0, low_open=True)
    config.number(cfg.loss.gamma, "loss.gamma", float, 0.0)
    for a in cfg.loss.alphas:
        config.number(a, "loss.alphas", float, 0.0)


def _split_or_empty(ds_spec, split: str) -> List[datasets.Sample]:
    try:
        return datasets.build(ds_spec, split)
    except datasets.EmptySplit:
        return []


class Trainer:
    """One training run: graph, session, loop, checkpoints, validation, logging."""

    def __init__(self, cfg: DictConfig, plan: Dict[str, object], run_dir: str):
        self.cfg, self.plan, self.run_dir = cfg, plan, run_dir
        self.spec: ModelSpec = plan["spec"]
        self.ckpt_dir = os.path.join(run_dir, "checkpoints")
        self.best_dir = os.path.join(self.ckpt_dir, "best")
        self.metrics_path = os.path.join(run_dir, "metrics.json")
        self.metrics = checkpoint.read_json(self.metrics_path) or {"history": []}
        self._stop = False
        self.engine = distribute.create(cfg.device)
        store = storage.from_config(cfg.storage)
        out = cfg.storage.get("output_url")
        self.sync = storage.RunSync(str(out), run_dir, store) if out and store is not None else None

    # -- graph -------------------------------------------------------------------------------------
    def build(self, start_step: int) -> None:
        """Build the training tower(s) on the engine, the validation tower (shared weights) and the session."""
        cfg, t, engine = self.cfg, self.cfg.train, self.engine
        self.graph = tf.Graph()
        with self.graph.as_default(), engine.scope():
            tf.set_random_seed(int(cfg.seed))
            self.step = tf.train.get_or_create_global_step()
            shard_index, shard_count = engine.shard()
            ds = pipeline.train_dataset(self.plan["train"], self.plan["crop"], int(t.batch_size),
                                        self.plan["ds"].augment, seed=(int(cfg.seed) + start_step) % 2 ** 32,
                                        shard_index=shard_index, shard_count=shard_count,
                                        parallel=int(t.loader_threads) or None)
            batches = tf.data.make_one_shot_iterator(ds)
            self.lr = lr_lib.build(cfg.lr_schedule, self.step)
            if t.get("scale_lr_with_workers") and engine.size > 1:
                self.lr = self.lr * float(engine.size)
            optimizer = device.wrap_optimizer(self._optimizer(), cfg.device, distributed=engine.size > 1)
            self.train_op, self.loss = engine.build_train_op(lambda: self._tower(batches), optimizer, self.step)
            self.x_val = tf.placeholder(tf.float32, [None, 2, None, None, 3], name="x_val")
            with tf.variable_scope(tf.get_variable_scope(), reuse=True):
                self.flow_val, _ = pwcnet(self.x_val, self.spec)
            self.model_vars = checkpoint.model_variables()
            self.saver = tf.train.Saver(max_to_keep=None)
            step_vars = [v for v in tf.global_variables() if v.op.name == "global_step"]
            self.best_saver = tf.train.Saver(var_list=self.model_vars + step_vars, max_to_keep=None)
            self.init_saver = tf.train.Saver(var_list=self.model_vars)
            hooks = engine.hooks()
            for hook in hooks:
                hook.begin()
            init = tf.global_variables_initializer()
        self.graph.finalize()
        self.sess = tf.Session(engine.target, graph=self.graph,
                               config=device.session_config(cfg.device, engine))
        self.sess.run(init)
        for hook in hooks:
            hook.after_create_session(self.sess, None)

    def _tower(self, batches) -> tf.Tensor:
        """One replica's loss on its next batch (also keeps its tensors for logging)."""
        loss_cfg = self.cfg.loss
        self.x, self.y, self.valid = batches.get_next()
        self.flow, pyramid = pwcnet(self.x, self.spec)
        order, eps, q = losses.KINDS[loss_cfg.kind]
        self.loss_unreg, _ = losses.pyramid_loss(self.y, pyramid, order, eps, q, list(loss_cfg.alphas), self.valid)
        self.decay = losses.weight_decay(tf.trainable_variables(), float(loss_cfg.gamma))
        self.epe = losses.epe(self.y, self.flow, self.valid)
        return self.loss_unreg + self.decay

    def _optimizer(self) -> tf.train.Optimizer:
        o = self.cfg.optimizer
        if o.name == "adam":
            return tf.train.AdamOptimizer(self.lr, beta1=float(o.beta1), beta2=float(o.beta2), epsilon=float(o.epsilon))
        return tf.train.GradientDescentOptimizer(self.lr)

    # -- state -------------------------------------------------------------------------------------
    def initial_step(self) -> Optional[str]:
        """The newest complete checkpoint of this run dir (or of its obs:// mirror) to resume from, or None."""
        if self.engine.is_chief:
            for folder in (self.ckpt_dir, self.best_dir, self.run_dir):
                checkpoint.remove_stale_temps(folder)
        latest = tf.train.latest_checkpoint(self.ckpt_dir) if os.path.isdir(self.ckpt_dir) else None
        if latest is None and self.sync is not None and self.cfg.resume:
            latest = self.sync.pull_latest_checkpoint(self.ckpt_dir)
            if latest:
                self.sync.pull(["metrics.json"])
                self.metrics = checkpoint.read_json(self.metrics_path) or self.metrics
        if latest and not self.cfg.resume:
            raise UserError("run dir %s already has checkpoints: rerun with resume=true or pick another run_name"
                            % self.run_dir)
        return self._intact(latest) if latest else None

    def _intact(self, latest: str) -> str:
        """The newest checkpoint that reads back whole; newer corrupt ones are named in a warning and dropped."""
        state = tf.train.get_checkpoint_state(self.ckpt_dir) if os.path.isdir(self.ckpt_dir) else None
        paths = list(state.all_model_checkpoint_paths) if state else []
        paths = [p if os.path.isabs(p) else os.path.join(self.ckpt_dir, p) for p in paths]
        bad = []
        for prefix in sorted(set(paths + [latest]), key=checkpoint.step_of, reverse=True):
            why = outputs.verify_checkpoint(prefix)
            if why is None:
                if bad and self.engine.is_chief:
                    checkpoint.discard_after(self.ckpt_dir, checkpoint.step_of(prefix))
                for b, w in bad:
                    log.warning("checkpoint %s is corrupt (%s): removed it, resuming from %s", b, w, prefix)
                return prefix
            bad.append((prefix, why))
        raise UserError("no intact checkpoint to resume from in %s: %s is corrupt (%s); rerun with another "
                        "run_name to start afresh" % (self.ckpt_dir, bad[0][0], bad[0][1]))

    def restore(self, latest: Optional[str]) -> None:
        """Resume everything (weights, optimizer slots, step) or load ``init_ckpt`` weights."""
        if latest:
            checkpoint.check_compatible(latest, self.model_vars, self.spec.name)
            self.saver.restore(self.sess, latest)
            log.info("resumed from %s", latest)
        elif self.cfg.init_ckpt:
            prefix = checkpoint.resolve(storage.localize(str(self.cfg.init_ckpt), self.cfg.storage, "checkpoint"))
            checkpoint.restore(self.sess, prefix, self.model_vars, self.spec.name, self.init_saver)
            log.info("initialised weights from %s", prefix)

    def save(self, step: int) -> Optional[str]:
        """Atomic checkpoint of everything (chief only), keeping the newest ``train.keep_checkpoints``; mirror it."""
        if not self.engine.is_chief:
            return None
        keep = int(self.cfg.train.keep_checkpoints)
        prefix = checkpoint.save_atomic(self.sess, self.saver, self.ckpt_dir, step, keep)
        if self.sync is not None:
            self.sync.push_checkpoint(prefix)
            self.sync.push()
        return prefix

    # -- validation --------------------------------------------------------------------------------
    def score(self, samples: List[datasets.Sample], limit: int) -> Optional[float]:
        """All-pixel EPE of the current weights over up to ``limit`` pairs (None when there are none)."""
        samples = samples[:limit] if limit > 0 else samples
        if not samples:
            return None
        acc = FlowMetrics()
        for names, x, y, valid in pipeline.eval_batches(samples, batch=1):
            h, w = x.shape[2:4]
            flow = self.sess.run(self.flow_val, {self.x_val: pad_to_multiple(x, self.spec.multiple, (2, 3))})
            acc.update(names, [s.split("/")[0] for s in names], flow[:, :h, :w], y, valid)
        return float(acc.result()["epe"])

    def validate(self, step: int, board: Board) -> None:
        """Score the held-out split and a slice of the training split; update metrics.json and best."""
        t = self.cfg.train
        val_epe = self.score(self.plan["val"], int(t.val_pairs))
        train_epe = self.score(self.plan["train"], int(t.train_eval_pairs))
        scores = (("val/epe", val_epe), ("val/train_split_epe", train_epe))
        board.scalars(step, {k: v for k, v in scores if v is not None})
        key = val_epe if val_epe is not None else train_epe
        m = self.metrics
        m.update({"step": step, "val_epe": val_epe, "train_split_epe": train_epe,
                  "val_split": "val" if val_epe is not None else None,
                  "best_by": "val_epe" if val_epe is not None else "train_split_epe"})
        m["history"].append({"step": step, "val_epe": val_epe, "train_split_epe": train_epe})
        if key is not None and (m.get("best_epe") is None or key < m["best_epe"]):
            prefix = checkpoint.save_atomic(self.sess, self.best_saver, self.best_dir, step, keep=1)
            m.update({"best_epe": key, "best_step": step, "best_ckpt": os.path.relpath(prefix, self.run_dir)})
        checkpoint.write_json_atomic(self.metrics_path, m)
        tqdm.write("%s Iter %d [Val]: val_epe=%s (held-out), train_split_epe=%s (training data), best=%s @ %s"
                   % (time.strftime("%Y-%m-%d %H:%M:%S"), step, _fmt(val_epe), _fmt(train_epe),
                      _fmt(m.get("best_epe")), m.get("best_step")))

    # -- loop --------------------------------------------------------------------------------------
    def run(self) -> None:
        """Train to ``train.iterations``, resuming if possible; Ctrl-C/SIGTERM save and exit."""
        latest = self.initial_step()
        start = checkpoint.step_of(latest) if latest else 0
        self.build(start)
        try:
            self.restore(latest)
            self._loop()
        finally:  # close the session (and the input pipeline's threads) on every exit path
            self.sess.close()

    def _loop(self) -> None:
        """The training loop proper (session built and restored)."""
        start = int(self.sess.run(self.step))
        t = self.cfg.train
        total, batch = int(t.iterations), int(t.batch_size)
        board = Board(os.path.join(self.run_dir, "tb") if self.engine.is_chief else None)
        previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True, file=sys.stdout)
        window: List[tuple] = []
        step, saved, t0 = start, start, time.time()
        try:
            while step < total and not self._stop:
                fetch = [self.train_op, self.loss, self.epe, self.lr, self.loss_unreg, self.decay]
                want_images = (step + 1) % int(t.image_interval) == 0
                if want_images:
                    fetch += [self.x, self.y, self.flow]
                out = self.sess.run(fetch)
                step += 1
                if not np.isfinite(out[1]):
                    raise self._diverged(out[1], step)
                window.append(tuple(out[1:6]))
                bar.update(1)
                if step % int(t.display_interval) == 0 or step == total:
                    t0 = self._display(step, window, time.time() - t0, board, total, batch)
                    window = []
                if want_images:
                    self._pictures(step, board, out[6], out[7], out[8])
                if step % int(t.save_interval) == 0:
                    self.save(step)
                    saved = step
                if step % int(t.val_interval) == 0 and self.engine.is_chief:
                    self.validate(step, board)
        except KeyboardInterrupt:
            self._stop = True
        except tf.errors.OpError as exc:
            user = pipeline.as_user_error(exc)
            if user is None:
                raise
            raise user
        finally:
            bar.close()
            signal.signal(signal.SIGTERM, previous)
        if saved != step:
            prefix = self.save(step)
            if self._stop:
                board.close()
                print("interrupted at step %d: checkpoint saved to %s; rerun the same command to resume"
                      % (step, prefix), file=sys.stderr)
                sys.exit(130)
        if self.metrics.get("step") != step and self.engine.is_chief:
            self.validate(step, board)
        board.close()
        if self.sync is not None and self.engine.is_chief:
            self.sync.push()
        m = self.metrics
        print("done: %d steps, val_epe=%s, train_split_epe=%s, best=%s at step %s, run dir %s"
              % (step, _fmt(m.get("val_epe")), _fmt(m.get("train_split_epe")), _fmt(m.get("best_epe")),
                 m.get("best_step"), self.run_dir))

    def _diverged(self, loss: float, step: int) -> UserError:
        """The loss of ``step`` came from the weights of ``step - 1``: drop checkpoints from then on."""
        kept = checkpoint.discard_after(self.ckpt_dir, step - 2) if self.engine.is_chief else None
        return UserError("loss became %s at step %d: stopped; last good checkpoint: %s"
                         % (loss, step, kept or "none (lower the learning rate or check the data)"))

    def _on_sigterm(self, signum, frame) -> None:
        self._stop = True

    def _display(self, step: int, window: List[tuple], seconds: float, board: Board, total: int, batch: int) -> float:
        loss, epe, lr, unreg, decay = (float(np.mean([w[i] for w in window])) for i in range(5))
        sec_step = seconds / max(len(window), 1)
        pairs = batch / sec_step if sec_step > 0 else 0.0
        tqdm.write(status_line(step, loss, epe, lr, pairs, sec_step, total - step))
        board.scalars(step, {"train/loss": loss, "train/loss_unregularized": unreg, "train/weight_decay": decay,
                             "train/epe": epe, "train/lr": lr, "perf/sec_per_step": sec_step,
                             "perf/pairs_per_sec": pairs})
        board.flush()
        return time.time()

    def _pictures(self, step: int, board: Board, x: np.ndarray, y: np.ndarray, flow: np.ndarray) -> None:
        scale = float(np.abs(y[0]).max()) or None
        rgb = (x[0, 0] * 255).astype(np.uint8)
        board.image(step, "train/frame1_prediction_groundtruth",
                    viz.side_by_side([rgb, viz.flow_to_color(flow[0], scale), viz.flow_to_color(y[0], scale)]))


def _fmt(v) -> str:
    return "n/a" if v is None else "%.3f" % v


@cli.entry("train")
def main(cfg: DictConfig) -> None:
    """Validate the config, then train (or resume) in the Hydra run dir."""
    plan = validate(cfg)
    run_dir = HydraConfig.get().runtime.output_dir
    cli.save_run_record(cfg)
    Trainer(cfg, plan, run_dir).run()


if __name__ == "__main__":
    main()

"""The training graph: input pipeline, tower(s) on the distribution engine, optimizer, a validation tower
sharing the weights, savers and the session."""

from typing import Any

from pwcflow.data import pipeline
from pwcflow.device import backend, precision
from pwcflow.files import checkpoint
from pwcflow.model import losses
from pwcflow.model.pwcnet import pwcnet
from pwcflow.tf1 import tf
from pwcflow.training import lr as lr_lib


class TrainGraph:
    """Everything ``Trainer`` runs: ``train_op``, the logged tensors, ``flow_val`` on ``x_val``, savers, ``sess``."""

    def __init__(self, plan: Any, engine: Any, start_step: int) -> None:
        self.cfg, self.plan, self.engine, self.spec = plan.cfg, plan, engine, plan.cfg.model
        self.build(start_step)

    def build(self, start_step: int) -> None:
        """Build the training tower(s) on the engine, the validation tower (shared weights) and the session."""
        cfg, t, engine = self.cfg, self.cfg.train, self.engine
        self.graph = tf.Graph()
        with self.graph.as_default(), engine.scope(), precision.graph(precision.fp32_layers(cfg.device)):
            tf.set_random_seed(cfg.seed)
            self.step = tf.train.get_or_create_global_step()
            shard_index, shard_count = engine.shard()
            ds = pipeline.train_dataset(self.plan.train, tuple(t.crop), t.batch_size, self.plan.ds.augment,
                                        seed=(cfg.seed + start_step) % 2 ** 32, shard_index=shard_index,
                                        shard_count=shard_count, parallel=t.loader_threads or None)
            batches = tf.data.make_one_shot_iterator(ds)
            self.lr = lr_lib.build(cfg.lr_schedule, self.step)
            if t.scale_lr_with_workers and engine.size > 1:
                self.lr = self.lr * float(engine.size)
            optimizer = backend.wrap_optimizer(self._optimizer(), cfg.device, distributed=engine.size > 1)
            # global_step advances on every step, applied or skipped: loss-scale optimizers advance it only on
            # finite steps (older npu_bridge INF/NAN mode never), so names, stored step and LR would drift apart
            train_op, self.loss = engine.build_train_op(lambda: self._tower(batches), optimizer, None)
            with tf.control_dependencies([train_op]):
                self.train_op = tf.group(train_op, self.step.assign_add(1), name="train_step")
            self.loss_scale, self.applied = backend.step_stats(optimizer)
            self.fetch = [self.train_op, self.loss, self.epe, self.lr, self.loss_unreg, self.decay, self.loss_scale]
            self.x_val = tf.placeholder(tf.float32, [None, 2, None, None, 3], name="x_val")
            with tf.variable_scope(tf.get_variable_scope(), reuse=True):
                self.flow_val, _ = pwcnet(self.x_val, self.spec)
            # validation: each worker scores its share of the pairs; [val err, val px, train err, train px] summed
            self.val_sums = tf.placeholder(tf.float64, [4], name="val_sums")
            self.val_totals = engine.sum_across(self.val_sums)
            self.model_vars = checkpoint.model_variables()
            self.saver = tf.train.Saver(max_to_keep=None)
            step_vars = [v for v in tf.global_variables() if v.op.name == "global_step"]
            self.best_saver = tf.train.Saver(var_list=self.model_vars + step_vars, max_to_keep=None)
            self.init_saver = tf.train.Saver(var_list=self.model_vars)
            hooks = engine.hooks()
            for hook in hooks:
                hook.begin()
            init = tf.group(tf.global_variables_initializer(), tf.local_variables_initializer())
        self.graph.finalize()
        self.sess = tf.Session(engine.target, graph=self.graph, config=backend.session_config(cfg.device, engine))
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
        self.decay = losses.weight_decay(tf.trainable_variables(), loss_cfg.gamma)
        self.epe = losses.epe(self.y, self.flow, self.valid)
        return self.loss_unreg + self.decay

    def _optimizer(self) -> tf.train.Optimizer:
        o = self.cfg.optimizer
        if o.name == "adam":
            return tf.train.AdamOptimizer(self.lr, beta1=o.beta1, beta2=o.beta2, epsilon=o.epsilon)
        return tf.train.GradientDescentOptimizer(self.lr)

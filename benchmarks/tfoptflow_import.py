"""Import an unmodified tfoptflow checkout into this process, on TF 1.15 and TF 2.x alike.

Nothing in the checkout is edited; its imports are satisfied from outside, only where they would fail:

- TF 2.x: while its modules load, ``import tensorflow`` resolves to ``tensorflow.compat.v1`` (TF1 graph
  semantics, which pwcflow has already switched on), and the two ``tf.contrib`` imports it never uses in
  float32 inference or training (``contrib.mixed_precision``: only with ``use_mixed_precision=True``;
  ``contrib.slim``: only in the debug ``summary()``) are stand-ins that raise if ever called.
- TF 2.x: ``core_warp``'s ``array_ops.stack/unstack`` moved to ``array_ops_stack``; its module-level
  ``array_ops`` name is pointed at a view of ``array_ops`` that has them again.
- Any TF: pandas, matplotlib and scikit-image, imported at module level by its eval, logging and data-set code
  but not on the forward, predict or training-step paths, are stand-ins when not installed.

``load(path)`` returns ``(model_pwcnet module, [what was stood in for])``.
"""

import os
import sys
import types
from typing import List, Tuple

from pwcflow.errors import UserError
from pwcflow.tf1 import IS_TF1, tf


class _Proxy(types.ModuleType):
    """A module whose missing attributes come from ``target`` (and ``extra`` first)."""

    def __init__(self, name: str, target, **extra):
        super().__init__(name)
        self.__dict__.update(extra)
        self._target = target
        if hasattr(target, "__path__"):
            self.__path__ = list(target.__path__)

    def __getattr__(self, key: str):
        return getattr(self._target, key)


def _unavailable(what: str):
    def fail(*args, **kwargs):
        raise RuntimeError("%s is a stand-in here (bench_vs_tfoptflow): not available" % what)
    return fail


def _stub(name: str, **attrs) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(attrs)

    def missing(key: str):  # PEP 562: any other name is a stand-in too (dunders stay missing for the importer)
        if key.startswith("__"):
            raise AttributeError(key)
        return _unavailable("%s.%s" % (name, key))

    mod.__getattr__ = missing
    return mod


def _stubs_for_missing() -> dict:
    """Stand-ins for the non-TF modules tfoptflow imports at module level that are not installed."""
    import importlib.util

    mods = {}
    if importlib.util.find_spec("pandas") is None:
        mods["pandas"] = _stub("pandas")
    if importlib.util.find_spec("matplotlib") is None:
        mods["matplotlib"] = _stub("matplotlib")
        mods["matplotlib.pyplot"] = _stub("matplotlib.pyplot")
        mods["matplotlib"].pyplot = mods["matplotlib.pyplot"]
    if importlib.util.find_spec("skimage") is None:
        io = _stub("skimage.io", imread=_unavailable("skimage.io.imread"), imsave=_unavailable("skimage.io.imsave"))
        mods["skimage"], mods["skimage.io"] = _stub("skimage", io=io), io
    return mods


def _tf2_modules() -> dict:
    """``tensorflow`` -> compat.v1 with a ``contrib`` holding the two unused stand-ins."""
    import tensorflow as real

    mp = _stub("tensorflow.contrib.mixed_precision",
               LossScaleOptimizer=_unavailable("tf.contrib.mixed_precision.LossScaleOptimizer"),
               FixedLossScaleManager=_unavailable("tf.contrib.mixed_precision.FixedLossScaleManager"))
    slim = _stub("tensorflow.contrib.slim")
    contrib = _stub("tensorflow.contrib", mixed_precision=mp, slim=slim)
    proxy = _Proxy("tensorflow", tf, contrib=contrib, __version__=real.__version__)
    proxy.__path__ = list(real.__path__)
    return {"tensorflow": proxy, "tensorflow.contrib": contrib, "tensorflow.contrib.mixed_precision": mp,
            "tensorflow.contrib.slim": slim}


def _fix_core_warp(shims: List[str]) -> None:
    import core_warp

    if not hasattr(core_warp.array_ops, "stack"):
        from tensorflow.python.ops import array_ops_stack

        core_warp.array_ops = _Proxy("array_ops", core_warp.array_ops, stack=array_ops_stack.stack,
                                     unstack=array_ops_stack.unstack)
        shims.append("core_warp.array_ops.stack/unstack -> array_ops_stack")


def _legacy_layers() -> bool:
    """Whether ``tf.compat.v1.layers.conv2d`` works here (Keras 2 behind it)."""
    try:
        tf.layers.conv2d  # noqa: B018 - the lazy loader raises on TF >= 2.16 without tf_keras
        return True
    except (AttributeError, ImportError):
        return False


def source_dir(path: str) -> str:
    """The folder holding ``model_pwcnet.py``: ``path`` itself or its ``tfoptflow/`` sub-folder."""
    for folder in (path, os.path.join(path, "tfoptflow")):
        if os.path.isfile(os.path.join(folder, "model_pwcnet.py")):
            return os.path.abspath(folder)
    raise UserError("--tfoptflow %s: no model_pwcnet.py there or in its tfoptflow/ folder" % path)


def load(path: str) -> Tuple[types.ModuleType, List[str]]:
    """Import tfoptflow's ``model_pwcnet`` from the checkout at ``path``; returns it and the shims used."""
    folder = source_dir(path)
    if not IS_TF1 and not _legacy_layers():
        raise UserError("tfoptflow's tf.layers needs Keras 2 on this TensorFlow: pip install tf-keras (its "
                        "version matching TensorFlow's) and run with TF_USE_LEGACY_KERAS=1")
    mods = _stubs_for_missing()
    shims = ["%s (not installed; unused on the benchmarked paths)" % k for k in mods if "." not in k]
    if not IS_TF1:
        mods.update(_tf2_modules())
        shims += ["import tensorflow -> tensorflow.compat.v1",
                  "tf.contrib.mixed_precision, tf.contrib.slim (unused in fp32)"]
    saved = {k: sys.modules.get(k) for k in mods}
    sys.modules.update(mods)
    sys.path.insert(0, folder)
    try:
        import model_pwcnet

        if not IS_TF1:
            _fix_core_warp(shims)
    finally:
        sys.path.remove(folder)
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return model_pwcnet, shims

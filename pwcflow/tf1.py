"""The single place TensorFlow is imported: TF1 graph semantics on TF 1.15 and TF 2.x alike.

Every module uses ``from pwcflow.tf1 import tf``; ``tf`` is ``tensorflow.compat.v1`` with v2
behaviour disabled (graph mode, reference variables), which is what tfoptflow's code assumes.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")



def _import_quietly():
    """Import TensorFlow with C++ start-up chatter (absl/oneDNN notices) kept off the terminal."""
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    return tensorflow


_tf = _import_quietly()

tf = _tf.compat.v1
tf.logging.set_verbosity(tf.logging.ERROR)
try:  # silence "non-resource variables are not supported in the long term" and similar notices
    from tensorflow.python.util import deprecation as _deprecation

    _deprecation._PRINT_DEPRECATION_WARNINGS = False
except ImportError:  # pragma: no cover
    pass
tf.disable_v2_behavior()

TF_VERSION = _tf.__version__
IS_TF1 = TF_VERSION.startswith("1.")

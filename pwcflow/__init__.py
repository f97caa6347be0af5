"""pwcflow: PWC-Net optical flow (tfoptflow-compatible) on CPU, GPU and Ascend NPU.

``pwcflow.load(name | checkpoint | model.onnx, ...)`` returns a flow model (``pwcflow.deploy.api``); importing
the package imports nothing else (no TensorFlow until a checkpoint is loaded).
"""

__version__ = "0.1.0"


def load(source, **options):
    """``pwcflow.deploy.api.load``: a ``FlowModel`` with ``m(img1, img2) -> (H, W, 2)`` (see its docstring)."""
    from pwcflow.deploy import api

    return api.load(source, **options)

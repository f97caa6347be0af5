"""pwcflow: PWC-Net optical flow (tfoptflow-compatible) on CPU, GPU and Ascend NPU."""

__version__ = "0.1.0"

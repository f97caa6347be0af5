"""ModelArts boot file: the console's "boot file" for a preset-image (Ascend-Powered-Engine, TensorFlow 1.15) job.

The platform runs ``python <code dir>/modelarts_boot.py --data_url=... --train_url=... --<hyperparameter>=<value>``
from ``/home/ma-user/modelarts/workspace/device0`` with only the code directory's parent on ``PYTHONPATH``
(ModelZoo ``FaceBoxes_ID1074_for_TensorFlow/model/run00/models/run00/my_env.log``: ``PWD`` and ``PYTHONPATH``),
after ``pip install -r <code dir>/pip-requirements.txt``. This file puts its own folder (the code directory, a plain
copy of the repository) first on ``sys.path`` and runs ``pwcflow.train`` with that argv (``cli.modelarts_argv``
maps the flags). Custom images and notebooks keep ``python -m pwcflow.train``.
"""

import os
import sys

CODE_DIR = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    """Import pwcflow from the code directory (not an installed copy) and train with the platform's argv."""
    sys.path[:] = [CODE_DIR] + [p for p in sys.path if os.path.abspath(p or os.curdir) != CODE_DIR]
    from pwcflow import train

    train.main()


if __name__ == "__main__":
    main()

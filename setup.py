"""Ship the top-level ``conf/`` and ``experiments/`` inside the package as ``pwcflow/conf`` and ``pwcflow/experiments``.

Everything else is in pyproject.toml. The repository keeps its layout; wheels and sdists get real copies (no symlinks).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_DIRS = ("conf", "experiments")


class BuildWithConfigs(build_py):
    """``build_py`` that also copies the Hydra configs and presets into the built package."""

    def run(self) -> None:
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        for name in DATA_DIRS:
            dst = os.path.join(self.build_lib, "pwcflow", name)
            if os.path.isdir(dst):
                shutil.rmtree(dst)
            shutil.copytree(os.path.join(here, name), dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithConfigs})

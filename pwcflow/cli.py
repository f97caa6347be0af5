"""What every entry point shares: Hydra wiring, the ModelArts argv shim, one-line user errors."""

import functools
import glob
import os
import re
import sys
from typing import Callable, Dict, List

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from pwcflow import config
from pwcflow.errors import UserError
from pwcflow.runtime.obs import is_remote

_PKG = os.path.dirname(os.path.abspath(__file__))


def _data_dir(name: str) -> str:
    """``pwcflow/<name>`` in an installed package (wheel/sdist), else the repository's top-level ``<name>/``."""
    installed = os.path.join(_PKG, name)
    return installed if os.path.isdir(installed) else os.path.join(os.path.dirname(_PKG), name)


CONF_DIR = _data_dir("conf")
EXPERIMENTS_DIR = _data_dir("experiments")


def register_experiments(folder: str = EXPERIMENTS_DIR) -> List[str]:
    """Make every ``experiments/NAME.yaml`` the Hydra option ``experiment=NAME`` (no symlink into conf/ needed)."""
    store, names = ConfigStore.instance(), []
    for path in sorted(glob.glob(os.path.join(folder, "*.yaml"))):
        name = os.path.splitext(os.path.basename(path))[0]
        store.store(group="experiment", name=name, node=OmegaConf.load(path), package="_global_")
        names.append(name)
    return names

# ModelArts appends ``--data_url=obs://...`` style flags, which Hydra rejects; map them to keys.
MODELARTS_FLAGS: Dict[str, str] = {"data_url": "dataset.root", "train_url": "storage.output_url"}
IGNORED_FLAGS = ("num_gpus", "init_method", "rank", "world_size")
# Hydra's own long flags stay as they are; any other ``--key=value`` (a ModelArts hyperparameter) is an override.
HYDRA_FLAGS = ("help", "hydra-help", "version", "cfg", "resolve", "package", "run", "multirun", "shell-completion",
               "config-path", "config-name", "config-dir", "experimental-rerun", "info")
CONFIG_KEY = re.compile(r"^[A-Za-z_][\w.]*$")


def modelarts_argv(argv: List[str]) -> List[str]:
    """Rewrite ``--data_url=X`` / ``--data_url X`` into Hydra overrides; drop ModelArts' other flags.

    ``--train_url``: an ``obs://``/``s3://`` URI (old-style jobs) becomes ``storage.output_url`` (the run dir is
    mirrored there); a local path (new-style jobs, which upload it to OBS themselves) becomes the run dir
    (``hydra.run.dir``), so checkpoints, ``metrics.json``, TensorBoard, ``.hydra/`` and the log land there and
    a restarted container with the same argv resumes from it.

    ModelArts passes a job's hyperparameters as ``--name=value`` too; ``--device=npu`` becomes ``device=npu``.
    """
    out, i = [argv[0]], 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and arg[2:].split("=", 1)[0] in tuple(MODELARTS_FLAGS) + IGNORED_FLAGS:
            key, _, value = arg[2:].partition("=")
            if not _ and i + 1 < len(argv):
                value, i = argv[i + 1], i + 1
            if key == "train_url" and value and not is_remote(value):
                out.append("hydra.run.dir=%s" % os.path.abspath(value))  # new style: the run dir itself
            elif key in MODELARTS_FLAGS:
                out.append("++%s=%s" % (MODELARTS_FLAGS[key], value))
        elif arg.startswith("--") and "=" in arg and CONFIG_KEY.match(arg[2:].split("=", 1)[0]) \
                and arg[2:].split("=", 1)[0] not in HYDRA_FLAGS:
            out.append(arg[2:])
        else:
            out.append(arg)
        i += 1
    return out


def require(cfg, *keys: str) -> None:
    """Fail with one line naming the first mandatory key the user did not set (a DictConfig or a typed config)."""
    for key in keys:
        if isinstance(cfg, DictConfig):
            value = None if OmegaConf.is_missing(cfg, key) else cfg.get(key)
        else:
            value = getattr(cfg, key)
        if value in (None, ""):
            raise UserError("missing required setting: add %s=... to the command line" % key)


def entry(config_name: str) -> Callable:
    """Decorate ``fn(cfg)`` into a ``python -m pwcflow.<cmd>`` main with Hydra and clean errors.

    ``fn`` receives the composed config converted and checked by ``config.load`` (a typed dataclass for
    commands with a schema in ``config.SCHEMAS``); ``main.run(cfg)`` calls ``fn`` on a composed config too.
    """

    def deco(fn: Callable[[object], object]) -> Callable[[], None]:
        @functools.wraps(fn)
        def guarded(cfg: DictConfig):
            try:
                return fn(config.load(config_name, cfg))
            except (UserError, MissingMandatoryValue) as exc:
                msg = str(exc).splitlines()[0]
                print("error: %s" % msg, file=sys.stderr, flush=True)
                sys.exit(1)

        def main() -> None:
            sys.argv = modelarts_argv(sys.argv)
            register_experiments()
            hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(guarded)()

        main.run = lambda cfg: fn(config.load(config_name, cfg))
        return main

    return deco

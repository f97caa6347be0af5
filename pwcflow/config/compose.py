"""Where the Hydra configs and presets live, and composing one config group outside a command."""

import glob
import os
from typing import Any, List, Mapping, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from pwcflow.config import groups

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the pwcflow package


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


def compose_group(group: str, option: str, changes: Optional[Mapping[str, Any]] = None) -> Any:
    """``conf/<group>/<option>.yaml`` as a command receives it: composed by Hydra (with the group's own
    defaults list), ``changes`` (dotted key -> value) set, then converted by ``commands.convert``.

    For tests and benchmarks that need one group without a whole command; never a hand-written default.
    """
    from hydra import compose, initialize_config_dir

    from pwcflow.config import commands

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        node = compose(overrides=["+%s=%s" % (group, option)])[group]
    for key, value in (changes or {}).items():
        OmegaConf.update(node, key, value, force_add=True, merge=False)
    return commands.convert(groups.GROUPS[group], node, group + ".")

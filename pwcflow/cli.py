"""What every entry point shares: Hydra wiring, the ModelArts argv shim, one-line user errors."""

import functools
import os
import re
import shutil
import sys
import traceback
from typing import Callable, Dict, List, Optional, TypeVar

import hydra
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from pwcflow.config import commands
from pwcflow.config.compose import CONF_DIR, register_experiments
from pwcflow.errors import UserError
from pwcflow.files import atomic, preflight
from pwcflow.storage.obs import is_remote

T = TypeVar("T")

# ModelArts appends ``--data_url=obs://...`` style flags, which Hydra rejects; map them to keys.
MODELARTS_FLAGS: Dict[str, str] = {"data_url": "dataset.root", "train_url": "storage.output_url"}
IGNORED_FLAGS = ("num_gpus", "init_method", "rank", "world_size")
# Hydra's own long flags stay as they are; any other ``--key=value`` (a ModelArts hyperparameter) is an override.
HYDRA_FLAGS = ("help", "hydra-help", "version", "cfg", "resolve", "package", "run", "multirun", "shell-completion",
               "config-path", "config-name", "config-dir", "experimental-rerun", "info")
CONFIG_KEY = re.compile(r"^[A-Za-z_][\w.]*$")
NPU_EXTRA = "device.npu.extra."
GROUP_OPTIONS = re.compile(r"Available options in '([^']+)':\n((?:\t[^\n]*\n?)+)")


def modelarts_argv(argv: List[str]) -> List[str]:
    """Rewrite ``--data_url=X`` / ``--data_url X`` into Hydra overrides; drop ModelArts' other flags.

    ``--train_url``: an ``obs://``/``s3://`` URI (old-style jobs) becomes ``storage.output_url`` (the run dir is
    mirrored there); a local path (new-style jobs, which upload it to OBS themselves) becomes the run dir
    (``hydra.run.dir``), so checkpoints, ``metrics.json``, TensorBoard, ``.hydra/`` and the log land there and
    a restarted container with the same argv resumes from it.

    ModelArts passes a job's hyperparameters as ``--name=value`` too; ``--device=npu`` becomes ``device=npu``.
    A flag with no value (``--data_url`` last, or followed by another ``--flag``) is refused naming it, except
    the ignored ones. ``device.npu.extra.KEY=V`` (a switch the schema does not know) becomes an addition
    (``++``), since ``extra`` starts empty.
    """
    out, i = [argv[0]], 1
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--") and arg[2:].split("=", 1)[0] in tuple(MODELARTS_FLAGS) + IGNORED_FLAGS:
            key, _, value = arg[2:].partition("=")
            if not _ and i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                value, i = argv[i + 1], i + 1
            if key in MODELARTS_FLAGS and not value:
                raise UserError("bad setting --%s: no value given (use --%s=obs://bucket/path or a local path)"
                                % (key, key))
            if key == "train_url" and not is_remote(value):
                out.append("hydra.run.dir=%s" % os.path.abspath(value))  # new style: the run dir itself
            elif key in MODELARTS_FLAGS:
                out.append("++%s=%s" % (MODELARTS_FLAGS[key], value))
        elif arg.startswith("--") and "=" in arg and CONFIG_KEY.match(arg[2:].split("=", 1)[0]) \
                and arg[2:].split("=", 1)[0] not in HYDRA_FLAGS:
            out.append(_extra_switch(arg[2:]))
        else:
            out.append(_extra_switch(arg))
        i += 1
    return out


def _extra_switch(arg: str) -> str:
    """``device.npu.extra.KEY=V`` -> ``++device.npu.extra.KEY=V`` (a new key: Hydra refuses it without ``++``)."""
    return "++" + arg if arg.startswith(NPU_EXTRA) and "=" in arg else arg


def require(cfg: object, *keys: str) -> None:
    """Fail with one line naming the first mandatory key of a typed config (``commands.load``) left unset."""
    for key in keys:
        if getattr(cfg, key) in (None, ""):
            raise UserError("missing required setting: add %s=... to the command line" % key)


class RunGuard(Callback):
    """Hydra callback (``hydra.callbacks.run_guard``): look at the run dir before Hydra creates it.

    A read-only or blocked run dir is refused here with one line; what existed (the run dir, its log
    file) is remembered so that a refused command can remove exactly what Hydra created for it.
    """

    before: Dict[str, bool] = {}
    top: str = ""

    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        """Record whether the run dir and its log file exist; check that the run dir can be written."""
        run_dir = os.path.abspath(str(config.hydra.run.dir))
        log_file = os.path.join(run_dir, "%s.log" % config.hydra.job.name)
        top = run_dir  # the outermost folder Hydra will create for this run dir (itself if its parent exists)
        while not os.path.exists(os.path.dirname(top)) and os.path.dirname(top) != top:
            top = os.path.dirname(top)
        RunGuard.before = {run_dir: os.path.isdir(run_dir), log_file: os.path.exists(log_file)}
        RunGuard.top = top
        try:
            preflight.preflight_dir(run_dir, "hydra.run.dir")
        except UserError as exc:
            _fail(str(exc))


def _fail(msg: str) -> None:
    print("error: %s" % msg.strip().splitlines()[0], file=sys.stderr, flush=True)
    sys.exit(1)


def run_dir(out: Optional[str] = None) -> Optional[str]:
    """Where a command writes: ``out`` when given (absolute), else Hydra's run dir (None outside a Hydra run)."""
    if out:
        return os.path.abspath(str(out))
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().runtime.output_dir if HydraConfig.initialized() else None


def undo_stub() -> None:
    """After a refusal: delete the run dir Hydra created for this command if it holds only .hydra/ and logs,
    and a log file it created in an existing run dir."""
    here = run_dir()
    for path, existed in RunGuard.before.items():
        if existed or not os.path.exists(path):
            continue
        if path != here:
            os.remove(path)
        elif all(n == ".hydra" or n.endswith(".log") for n in os.listdir(path)):
            shutil.rmtree(path, ignore_errors=True)
            while path != RunGuard.top and path.startswith(RunGuard.top + os.sep):
                path = os.path.dirname(path)
                try:
                    os.rmdir(path)  # only while empty: parents Hydra made for this run dir alone
                except OSError:
                    break


_COMPOSED: List[DictConfig] = []  # the composed config of the running command (for save_run_record)


def remember(cfg: DictConfig) -> None:
    """Keep the composed config for ``save_run_record`` (a module function: launchers that pickle the task
    by value, such as joblib's, still reach this module's list through it)."""
    _COMPOSED[:] = [cfg]


def save_run_record() -> None:
    """Write ``.hydra/{config,hydra,overrides}.yaml`` once the command was accepted (``hydra.output_subdir: null``
    keeps Hydra from writing them before the settings were checked)."""
    from hydra.core.hydra_config import HydraConfig

    folder = os.path.join(HydraConfig.get().runtime.output_dir, ".hydra")
    atomic.remove_stale(folder)
    atomic.atomic_files([
        (os.path.join(folder, "config.yaml"), lambda tmp: _yaml(tmp, _COMPOSED[-1])),
        (os.path.join(folder, "hydra.yaml"), lambda tmp: _yaml(tmp, HydraConfig.instance().cfg)),
        (os.path.join(folder, "overrides.yaml"), lambda tmp: _yaml(tmp, HydraConfig.get().overrides.task)),
    ])


def _yaml(path: str, node) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(OmegaConf.to_yaml(node))


def unexpected(exc: BaseException) -> str:
    """One line for a bug or an environment failure, pointing at where the full traceback went."""
    log_file = None
    here = run_dir()
    if here and os.path.isdir(here):
        from hydra.core.hydra_config import HydraConfig

        log_file = os.path.join(here, "%s.log" % HydraConfig.get().job.name)
        log_file = log_file if os.path.isfile(log_file) else None  # a command logging to stdout (doctor): no file
    if log_file:
        try:
            with open(log_file, "a") as fh:
                fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        except OSError:
            log_file = None
    where = ("full traceback in %s; " % log_file if log_file else "") + "HYDRA_FULL_ERROR=1 prints it here"
    if isinstance(exc, OSError) and exc.strerror:
        what = "%s: %s" % (exc.strerror, exc.filename or "")
    else:
        what = "%s: %s" % (type(exc).__name__, (str(exc).strip().splitlines() or [""])[0])
    return "unexpected %s (%s)" % (what, where)


def precheck(config_name: str, args: List[str]) -> None:
    """Compose the config once before Hydra does, so that a bad override (unknown key, wrong type, missing
    config group option) is one ``error:`` line naming the key instead of Hydra's multi-line report.

    Skipped when Hydra flags (``-m``, ``--cfg``, ...) are given: Hydra handles those itself.
    """
    if any(a.startswith("-") for a in args):
        return
    from hydra import compose, initialize_config_dir

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            compose(config_name, overrides=list(args), return_hydra_config=True)
    except Exception as exc:  # ConfigCompositionException, OverrideParseException, OmegaConf errors
        _fail(override_error(exc))


def override_error(exc: BaseException) -> str:
    """One line for a composition failure: the key, the first line of each chained reason, and for an
    unknown config-group option the valid ones (Hydra lists them on lines of their own)."""
    lines, key, cur, options = [], None, exc, ""
    while cur is not None:
        first = (str(cur).strip().splitlines() or [""])[0].rstrip(".")
        lines += [first] if first not in lines and first not in ("", "None") else []
        key = key or getattr(cur, "full_key", None)
        found = GROUP_OPTIONS.search(str(cur))
        if found and not options:
            names = [n.strip() for n in found.group(2).splitlines() if n.strip()]
            options = "; valid options for %s: %s" % (found.group(1), ", ".join(names))
        cur = cur.__cause__ or cur.__context__
    if key and key.startswith(NPU_EXTRA[:-len("extra.")]) and not key.startswith(NPU_EXTRA) \
            and any("not in struct" in ln for ln in lines):
        return ("bad setting %s: not a known NpuOptimizer switch (put others under device.npu.extra: %s%s=VALUE)"
                % (key, NPU_EXTRA, key.rsplit(".", 1)[-1]))
    return ("bad setting %s: " % key if key else "bad override: ") + "; ".join(lines) + options


def _strings(node: object) -> List[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def warn_local_obs(cfg: DictConfig) -> None:
    """``storage=obs`` with no ``obs://`` path anywhere in the config: say that everything stays local."""
    if OmegaConf.select(cfg, "storage.name") != "obs":
        return
    if not any(is_remote(v) for v in _strings(OmegaConf.to_container(cfg, resolve=False))):
        print("warning: storage=obs but no obs:// path is set (dataset.root, ckpt, storage.output_url, --data_url, "
              "--train_url): this run reads and writes local files only", file=sys.stderr, flush=True)


def guard(call: Callable[[], T], undo: Callable[[], None] = lambda: None) -> T:
    """Every command's error guard: ``call()``; a refusal (``UserError``, a missing or mistyped setting) becomes
    one ``error:`` line after ``undo()`` (which removes what the command created), anything else one
    ``error: unexpected ...`` line with the traceback in the log (``HYDRA_FULL_ERROR=1`` raises it); exit 1."""
    try:
        return call()
    except (UserError, MissingMandatoryValue) as exc:
        undo()
        _fail(str(exc))
    except OmegaConfBaseException as exc:
        undo()
        key = getattr(exc, "full_key", None) or "?"
        _fail("bad setting %s: %s" % (key, str(exc).strip().splitlines()[0]))
    except Exception as exc:  # a bug or the environment: one line, the traceback goes to the log
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        _fail(unexpected(exc))
    raise AssertionError("unreachable: _fail exits")


def entry(config_name: str) -> Callable:
    """Decorate ``fn(cfg)`` into a ``python -m pwcflow.<cmd>`` main with Hydra and clean errors.

    ``fn`` receives the composed config converted and checked by ``commands.load`` (a typed dataclass for
    commands with a schema in ``commands.SCHEMAS``); ``main.run(cfg)`` calls ``fn`` on a composed config too.
    """

    def deco(fn: Callable[[object], object]) -> Callable[[], None]:
        @functools.wraps(fn)
        def guarded(cfg: DictConfig):
            remember(cfg)

            def call():
                typed = commands.load(config_name, cfg)
                warn_local_obs(cfg)
                return fn(typed)

            return guard(call, undo=undo_stub)

        def main() -> None:
            try:
                sys.argv = modelarts_argv(sys.argv)
            except UserError as exc:
                _fail(str(exc))
            register_experiments()
            precheck(config_name, sys.argv[1:])
            hydra.main(config_path=CONF_DIR, config_name=config_name, version_base="1.3")(guarded)()

        main.run = lambda cfg: fn(commands.load(config_name, cfg))
        return main

    return deco

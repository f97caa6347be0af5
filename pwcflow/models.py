"""``python -m pwcflow.models [--cache-dir DIR]``: the published checkpoints pwcflow knows by name.

Lists each model of the registry (``pwcflow/models.yaml``, or ``$PWCFLOW_MODELS``): name, variant, the EPE
its authors report, where it comes from, and whether it is in the local cache. Nothing is downloaded here:
a name given as ``ckpt=NAME`` / ``init_ckpt=NAME`` / ``pwcflow.load(NAME)`` is fetched once, where it is used.
"""

import os
import sys
from typing import List, Optional

from pwcflow import cli
from pwcflow.errors import UserError
from pwcflow.storage import registry
from pwcflow.storage.client import default_cache_dir

USAGE = "usage: python -m pwcflow.models [--cache-dir DIR]"


def rows(cache: str) -> List[List[str]]:
    """One row per model: name, variant, reported EPE, origin, cache state."""
    out = []
    for name, model in sorted(registry.load().items()):
        epe = ", ".join("%s %.2f" % (k, v) for k, v in sorted(model.epe.items())) or "-"
        origin = model.origin or "by hand: %s" % model.page
        local = registry.cached(model, cache)
        out.append([name, model.variant, epe, origin, "cached: %s" % local if local else "not cached"])
    return out


def parse_args(argv: List[str]) -> str:
    """The cache dir named by ``--cache-dir`` (default: the storage cache's); one line for anything else."""
    cache = None
    for i, arg in enumerate(argv):
        if arg.startswith("--cache-dir="):
            cache = arg.split("=", 1)[1]
        elif arg == "--cache-dir" and i + 1 < len(argv):
            cache = argv[i + 1]
        elif not (i > 0 and argv[i - 1] == "--cache-dir"):
            raise UserError("bad setting %s: not an option of pwcflow.models (%s)" % (arg.split("=", 1)[0], USAGE))
    if cache == "":
        raise UserError("bad setting --cache-dir: needs a folder (%s)" % USAGE)
    return os.path.abspath(os.path.expanduser(cache or default_cache_dir()))


def main(argv: Optional[List[str]] = None) -> None:
    """Print the table (markdown) and the registry and cache it read."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print("%s\n\n%s" % (USAGE, __doc__.strip()))
        return
    cache = cli.guard(lambda: parse_args(argv))
    table = cli.guard(lambda: rows(cache))
    print("| name | variant | reported EPE | origin | local cache |\n|---|---|---|---|---|")
    for row in table:
        print("| %s |" % " | ".join(row))
    print("\nregistry %s, cache %s" % (registry.path(), cache))


if __name__ == "__main__":
    main()

"""The registry of published checkpoints (``pwcflow/models.yaml``): names -> origin, variant, reported EPE.

``PWCFLOW_MODELS=FILE.yaml`` replaces the shipped list (same format). Reading it fetches nothing: a
download happens only when a name is given where a checkpoint is taken (``storage.cache.localize``).
"""

import json
import os
import re
from typing import Dict, List, NamedTuple, Optional

from pwcflow.errors import UserError

ENV_REGISTRY = "PWCFLOW_MODELS"
SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models.yaml")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class Model(NamedTuple):
    """One published checkpoint."""

    name: str
    variant: str
    trained_on: str
    epe: Dict[str, float]
    origin: Optional[str]        # obs:// or s3:// checkpoint prefix; None = download by hand from ``page``
    page: str
    file: Optional[str]          # the checkpoint prefix's file name where ``origin`` is None
    endpoint: Optional[str]
    region: Optional[str]
    path_style: Optional[bool]
    signature: Optional[str]
    sha256: Dict[str, str]


def path() -> str:
    """The registry file in use: ``$PWCFLOW_MODELS`` or the shipped ``pwcflow/models.yaml``."""
    return os.environ.get(ENV_REGISTRY) or SHIPPED


def load() -> Dict[str, Model]:
    """Every model of the registry, by name (one-line error naming the file for a malformed one)."""
    import yaml

    where = path()
    try:
        with open(where) as fh:
            doc = yaml.safe_load(fh) or {}
        entries = doc["models"]
        return {str(name): _model(str(name), dict(entry)) for name, entry in entries.items()}
    except OSError as exc:
        raise UserError("cannot read the model registry %s: %s" % (where, exc.strerror or exc))
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError("bad model registry %s: %s" % (where, str(exc).splitlines()[0] if str(exc) else exc))


def _model(name: str, entry: dict) -> Model:
    if not _NAME_RE.match(name):
        raise ValueError("model name %r: use lowercase letters, digits, '.', '_' and '-'" % name)
    if not entry.get("origin") and not entry.get("file"):
        raise ValueError("model %s: needs origin (obs://...) or file (the checkpoint's name)" % name)
    return Model(name=name, variant=str(entry["variant"]), trained_on=str(entry.get("trained_on") or ""),
                 epe={str(k): float(v) for k, v in (entry.get("epe") or {}).items()},
                 origin=entry.get("origin") or None, page=str(entry.get("page") or ""),
                 file=entry.get("file") or None, endpoint=entry.get("endpoint") or None,
                 region=entry.get("region") or None, path_style=entry.get("path_style"),
                 signature=entry.get("signature") or None,
                 sha256={str(k): str(v).lower() for k, v in (entry.get("sha256") or {}).items()})


def lookup(value: Optional[str]) -> Optional[Model]:
    """The model named ``value``, or None when ``value`` is not a bare registry name (a path or a URI)."""
    if not value or not _NAME_RE.match(str(value)) or os.path.exists(str(value)):
        return None
    return load().get(str(value))


def looks_like_name(value: Optional[str]) -> bool:
    """True for a bare word that is no existing path (nor a checkpoint prefix's files): meant as a model name."""
    value = str(value or "")
    return bool(_NAME_RE.match(value)) and not any(os.path.exists(value + ext) for ext in ("", ".index"))


def names() -> List[str]:
    return sorted(load())


def record_path(cache: str, name: str) -> str:
    """Where a downloaded model's record lives: ``<cache>/models/NAME.json`` (origin, prefix, file sizes)."""
    return os.path.join(cache, "models", name + ".json")


def cached(model: Model, cache: str) -> Optional[str]:
    """The checkpoint prefix of ``model`` in the cache (its record and files of the recorded sizes), or None.

    A model published for download by hand counts once its files are in ``<cache>/models/NAME/``."""
    if model.origin is None:
        prefix = os.path.join(cache, "models", model.name, model.file or "")
        return prefix if model.file and os.path.isfile(prefix + ".index") else None
    try:
        with open(record_path(cache, model.name)) as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    prefix, files = record.get("prefix"), record.get("files") or {}
    if record.get("origin") != model.origin or not prefix or not files:
        return None
    folder = os.path.dirname(prefix)
    for name, size in files.items():
        if not os.path.isfile(os.path.join(folder, name)) or os.path.getsize(os.path.join(folder, name)) != size:
            return None
    return prefix

"""The registry of published checkpoints (``storage/registry.py``, ``pwcflow/models.yaml``)."""

import pytest

from pwcflow.errors import UserError
from pwcflow.storage import registry
from pwcflow.storage.cache import localize


def test_shipped_registry_lists_the_seed_and_tfoptflow_models():
    models = registry.load()
    seed = [m for m in models.values() if m.origin and m.origin.startswith("obs://pwcnet-final/")]
    assert sorted(m.epe["sintel_clean_train"] for m in seed) == [1.76, 1.76, 2.60]
    assert {m.variant for m in models.values()} == {"lg-6-2", "sm-6-2"}
    assert all(m.page for m in models.values()) and registry.lookup("/no/such/path") is None
    with pytest.raises(UserError, match=r"^checkpoint not found: pwcnet-lg-6-2-chairsthing \(neither a path nor a "
                       r"published model name; python -m pwcflow.models lists those\)$"):
        localize("pwcnet-lg-6-2-chairsthing", None, "checkpoint")  # a typo: nothing fetched, a hint

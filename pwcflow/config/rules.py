"""The rule vocabulary of the typed config layer: ``check`` and the named range rules a schema field declares.

Schemas (``pwcflow.config.commands``, ``pwcflow.config.groups``) mark a field ``ruled(NAME)``; ``config.convert``
applies ``RULES[NAME]`` to the converted value and names the key in the one-line error.
"""

from dataclasses import field
from typing import Any, Callable, Dict, Tuple

from pwcflow.errors import UserError


def check(ok: bool, key: str, why: str) -> None:
    """Raise a one-line ``UserError`` about config key ``key`` unless ``ok``."""
    if not ok:
        raise UserError("bad setting %s: %s" % (key, why))


RULES: Dict[str, Tuple[Callable[[Any], bool], str]] = {  # "{n}": integer or number
    "positive": (lambda v: v > 0, "must be a positive {n}"),
    "at_least_1": (lambda v: v >= 1, "must be an integer >= 1"),
    "one_or_more": (lambda v: v >= 1, "must be >= 1"),
    "above_1": (lambda v: v > 1, "must be > 1"),
    "open_unit": (lambda v: 0.0 < v < 1.0, "must be in (0, 1)"),
    "non_negative": (lambda v: v >= 0, "must be a non-negative {n}"),
    "probability": (lambda v: 0.0 <= v <= 1.0, "must be a probability in [0, 1]"),
    "decay_rate": (lambda v: 0.0 <= v < 1.0, "must be in [0, 1)"),
    "all_positive": (lambda v: all(x > 0 for x in v), "must all be positive"),
    "increasing": (lambda v: list(v) == sorted(set(v)), "must be strictly increasing"),
    "crop": (lambda v: len(v) == 2 and all(c > 0 and c % 64 == 0 for c in v),
             "must be [height, width], positive multiples of 64"),
    "five": (lambda v: len(v) == 5 and all(x >= 0 for x in v), "needs 5 non-negative weights (levels 6..2)"),
}
SCALAR_RULES = ("positive", "at_least_1", "non_negative", "probability", "decay_rate", "one_or_more", "above_1",
                "open_unit")  # their words also say what a value of the wrong type should have been


def ruled(rule: str, *choices: str) -> Any:
    """A dataclass field checked by ``RULES[rule]`` (or ``rule="one_of"`` with ``choices``)."""
    return field(metadata={"rule": rule, "choices": choices})

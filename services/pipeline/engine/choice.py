"""Choice rules, as Amazon States Language writes them, and the pure choice between them.

A Choice state's ``Choices`` are tried in order; the first rule that holds names the next
state, else ``Default`` does (none: the run fails with States.NoChoiceMatched). A rule is
a comparison of ``Variable`` (a path into the run's document) with a value, or with the
value at another path (the ``...Path`` forms), or ``And`` / ``Or`` / ``Not`` of rules::

    {"Variable": "$.quotaCheck.quota_reached", "BooleanEquals": true, "Next": "QuotaReached"}
    {"And": [{"Variable": "$.loop", "BooleanEquals": true},
             {"Variable": "$.daily_count", "NumericLessThanPath": "$.daily_quota"}],
     "Next": "FetchManga"}

Comparisons: BooleanEquals, StringEquals, NumericEquals, NumericLessThan,
NumericLessThanEquals, NumericGreaterThan, NumericGreaterThanEquals (each also as
``...Path``), IsPresent, IsNull, IsBoolean, IsNumeric, IsString. As in Step Functions, a
comparison of values of the wrong type is false, not an error. Pure: no I/O.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.pipeline.engine.paths import is_path, resolve

__all__ = ["COMPARISONS", "NO_CHOICE_MATCHED", "check_rule", "choose", "holds"]

NO_CHOICE_MATCHED = "States.NoChoiceMatched"


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _typed(check: Callable[[Any], bool], compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    return lambda left, right: check(left) and check(right) and compare(left, right)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "BooleanEquals": _typed(_is_bool, operator.eq),
    "StringEquals": _typed(_is_str, operator.eq),
    "NumericEquals": _typed(_numeric, operator.eq),
    "NumericLessThan": _typed(_numeric, operator.lt),
    "NumericLessThanEquals": _typed(_numeric, operator.le),
    "NumericGreaterThan": _typed(_numeric, operator.gt),
    "NumericGreaterThanEquals": _typed(_numeric, operator.ge),
}
"""Comparison name -> test of (the Variable's value, the operand)."""

_PRESENCE: dict[str, Callable[[Any, bool], bool]] = {
    "IsPresent": lambda present_value, want: (present_value is not _ABSENT) == want,
    "IsNull": lambda value, want: (value is None) == want,
    "IsBoolean": lambda value, want: _is_bool(value) == want,
    "IsNumeric": lambda value, want: _numeric(value) == want,
    "IsString": lambda value, want: _is_str(value) == want,
}

_ABSENT = object()
_RULE_KEYS = {"Next", "Comment"}


def check_rule(rule: Mapping[str, Any], *, top: bool = True) -> None:
    """Raise ValueError naming what is wrong with ``rule`` (a top-level rule needs Next)."""
    keys = set(rule) - _RULE_KEYS
    if top and not isinstance(rule.get("Next"), str):
        raise ValueError("a choice rule needs Next")
    if not top and "Next" in rule:
        raise ValueError("Next belongs on the top-level rule only")
    if keys in ({"And"}, {"Or"}):
        inner = rule["And"] if "And" in rule else rule["Or"]
        if not isinstance(inner, list) or not inner:
            raise ValueError("And / Or take a non-empty list of rules")
        for sub in inner:
            check_rule(sub, top=False)
        return
    if keys == {"Not"}:
        check_rule(rule["Not"], top=False)
        return
    if "Variable" not in keys or not is_path(rule.get("Variable")):
        raise ValueError(f"a choice rule needs a Variable path and one comparison, got {sorted(keys)}")
    tests = keys - {"Variable"}
    if len(tests) != 1:
        raise ValueError(f"a choice rule takes exactly one comparison, got {sorted(tests)}")
    (test,) = tests
    name = test.removesuffix("Path")
    if test in _PRESENCE:
        if not isinstance(rule[test], bool):
            raise ValueError(f"{test} takes true or false")
    elif name not in COMPARISONS:
        known = ", ".join([*COMPARISONS, *_PRESENCE])
        raise ValueError(f"unknown comparison {test!r} (known: {known}, and each comparison's ...Path form)")
    elif test.endswith("Path") and not is_path(rule[test]):
        raise ValueError(f"{test} takes a path, got {rule[test]!r}")


def holds(rule: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
    """Whether ``rule`` holds for ``document`` (a rule ``check_rule`` accepted)."""
    if "And" in rule:
        return all(holds(sub, document) for sub in rule["And"])
    if "Or" in rule:
        return any(holds(sub, document) for sub in rule["Or"])
    if "Not" in rule:
        return not holds(rule["Not"], document)
    variable = rule["Variable"]
    (test,) = set(rule) - _RULE_KEYS - {"Variable"}
    if test in _PRESENCE:
        value = _present(variable, document) if test == "IsPresent" else resolve(variable, document)
        return _PRESENCE[test](value, rule[test])
    value = resolve(variable, document)
    operand = resolve(rule[test], document) if test.endswith("Path") else rule[test]
    return COMPARISONS[test.removesuffix("Path")](value, operand)


def choose(
    choices: Sequence[Mapping[str, Any]], default: str | None, document: Mapping[str, Any]
) -> str | None:
    """The Next of the first rule in ``choices`` that holds, else ``default`` (None: no match)."""
    return next((rule["Next"] for rule in choices if holds(rule, document)), default)


def _present(path: str, document: Mapping[str, Any]) -> Any:
    """The value at ``path``, or _ABSENT when a key on the way is missing."""
    value: Any = document
    for key in path.partition(".")[2].split(".") if "." in path else ():
        if not isinstance(value, Mapping) or key not in value:
            return _ABSENT
        value = value[key]
    return value

"""Reference paths and Parameters, the subset of Amazon States Language the machine reads.

A path names a value in the run's document (``$``) or in the context object (``$$``)::

    $                         the whole document
    $.quotaCheck.quota_reached  a field, one key per dot
    $$.Task.Token             the context object: the task token minted for this call

A Parameters template is a JSON object whose keys ending in ``.$`` take the value at the
path they hold; other keys are copied as they are, objects recursively::

    {"job_id.$": "$.video_job_id", "task_token.$": "$$.Task.Token", "kind": "render"}

One difference from Step Functions, on purpose: a path to a field that is not there gives
``null`` instead of failing the state (States.Runtime), because a run resumed from an
older checkpoint may lack a field a newer definition names. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["is_path", "parameters", "resolve"]

_MISSING = object()


def is_path(text: Any) -> bool:
    """Whether ``text`` is a reference path (``$`` or ``$$``, then dotted keys)."""
    if not isinstance(text, str) or not text.startswith("$"):
        return False
    head, _, rest = text.partition(".")
    return head in ("$", "$$") and all(part for part in rest.split(".")) if rest else head in ("$", "$$")


def resolve(path: str, document: Mapping[str, Any], context: Mapping[str, Any] | None = None) -> Any:
    """The value at ``path`` (``$...`` in ``document``, ``$$...`` in ``context``), or None."""
    if not is_path(path):
        raise ValueError(f"not a reference path: {path!r} (start with $. or $$.)")
    head, _, rest = path.partition(".")
    value: Any = document if head == "$" else (context or {})
    for key in rest.split(".") if rest else ():
        value = value.get(key, _MISSING) if isinstance(value, Mapping) else _MISSING
        if value is _MISSING:
            return None
    return value


def parameters(template: Mapping[str, Any], document: Mapping[str, Any], context: Mapping[str, Any]) -> dict:
    """``template`` with every ``key.$`` replaced by ``key`` and the value at its path."""
    out: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            out[key[:-2]] = resolve(value, document, context)
        elif isinstance(value, Mapping):
            out[key] = parameters(value, document, context)
        else:
            out[key] = value
    return out

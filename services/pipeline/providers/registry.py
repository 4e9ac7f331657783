"""The one registry of backends: which class a setting's value names, for each kind.

Each kind of outside thing (fetch, script, tts, render, upload) has a Protocol in
``providers/<kind>/base.py`` and its backends beside it. This table maps the value of the
kind's setting (FETCH_SOURCE, SCRIPT_WRITER, TTS_ENGINE, UPLOAD_TARGET; the renderer has
one backend) to the class, loaded only when it is used (so the Google client, the OpenAI
SDK and edge-tts load only when chosen). The settings' allowed values, ``doctor``'s and the
start-up log's lines (each backend's ``describe``) and the stages' choice of backend all
come from here: adding a speech engine is one new file in ``providers/tts/`` and one line
below.

A backend class has ``name`` (its setting's value), ``describe(settings) -> str`` (a
classmethod: which backend, with what, in one line) and is built with
``Class(settings, data_dir)``: the account's settings, secrets included as the settings
hand them (``settings.openai_key()``), never read from the environment by the backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BACKENDS", "KINDS", "SETTINGS", "backend", "backend_class", "names"]

BACKENDS: dict[str, dict[str, str]] = {
    "fetch": {
        "local": "services.pipeline.providers.fetch.local_fetch:LocalFetch",
        "mangadex": "services.pipeline.providers.fetch.mangadex_fetch:MangaDexFetch",
    },
    "script": {
        "template": "services.pipeline.providers.script.template_writer:TemplateWriter",
        "openai": "services.pipeline.providers.script.llm_writer:LLMWriter",
    },
    "tts": {
        "local": "services.pipeline.providers.tts.local_engine:LocalSpeech",
        "edge-tts": "services.pipeline.providers.tts.edge_engine:EdgeSpeech",
    },
    "render": {
        "local": "services.pipeline.providers.render.local_renderer:LocalRenderer",
    },
    "upload": {
        "local": "services.pipeline.providers.upload.local_publisher:LocalPublisher",
        "youtube": "services.pipeline.providers.upload.youtube_publisher:YouTubePublisher",
    },
}
"""kind -> setting value -> ``module:Class``."""

KINDS = tuple(BACKENDS)

SETTINGS = {"fetch": "fetch_source", "script": "script_writer", "tts": "tts_engine", "upload": "upload_target"}
"""The settings field that picks each kind's backend (the renderer has one)."""


@dataclass(frozen=True)
class _Chosen:
    kind: str
    name: str


def names(kind: str) -> list[str]:
    """The values the kind's setting may take, in the table's order."""
    return list(BACKENDS[kind])


def _chosen(kind: str, settings: Any) -> _Chosen:
    if kind == "script":
        return _Chosen(kind, "openai" if settings.uses_llm() else "template")  # SCRIPT_WRITER=auto
    field = SETTINGS.get(kind)
    return _Chosen(kind, getattr(settings, field) if field else next(iter(BACKENDS[kind])))


def backend_class(kind: str, settings: Any) -> type:
    """The class of the backend ``settings`` choose for ``kind`` (imported now)."""
    chosen = _chosen(kind, settings)
    try:
        where = BACKENDS[kind][chosen.name]
    except KeyError:
        raise ValueError(f"no {kind} backend named {chosen.name!r} (known: {', '.join(names(kind))})") from None
    module, _, cls = where.partition(":")
    return getattr(importlib.import_module(module), cls)


def backend(kind: str, settings: Any, data_dir: Path) -> Any:
    """The backend ``settings`` choose for ``kind``, built for ``data_dir``."""
    return backend_class(kind, settings)(settings, data_dir)

"""The LLM script writer: a chapter's Vietnamese narration from any OpenAI-compatible server.

It talks Chat Completions (what OpenAI, Ollama, vLLM and llama.cpp's server all implement)
with a strict ``json_schema`` response format, and validates every answer itself with
:class:`NarrationAnswer` and against the chapter, whatever the server claims: each panel
named exists and is covered exactly once, in reading order (a segment may cover a group
of consecutive panels), and the narration is Vietnamese.

How the model sees the chapter:

- ``vision=True``: the panels go in as downscaled JPEG images, each preceded by its file
  name, ``images_per_request`` per request. Each request narrates only its batch and gets
  the running summary of the earlier batches; the *last* batch's title, description, tags
  and summary (asked to cover the whole chapter) are the chapter's.
- ``vision=False`` (a text-only model): one request with the chapter's metadata, its
  panel names and the lines known for them.

An answer that does not validate is asked again once, with the bad answer and the error
appended to the conversation; if the second answer fails too, the chapter is narrated by
:func:`script_template.narrate` (``writer: "template"``) and a warning says why.

Network and server errors are not swallowed. The SDK first retries a request itself:
``max_retries`` (default 2, so up to 3 attempts) on connection errors, timeouts, 408, 409,
429 and 5xx, sleeping 0.5 s x 2^n (at most 8 s, minus up to 25 % jitter) or what the
server's ``Retry-After``/``retry-after-ms`` asks (up to 120 s; a longer ask is not
retried). Each attempt may take ``timeout_seconds`` (default 120 s, against the SDK's own
600 s). What still fails raises its ``openai.APIError`` so the state's Retry/Catch applies;
a refused key (HTTP 401) raises :class:`LLMAuthError`, which names OPENAI_API_KEY.

Per-series memory, both JSON files written atomically and left readable:

- ``glossary_path`` (``{"names": {"source name": "Hán-Việt form"}}``) goes into the system
  prompt ("use exactly these names"); names the model adds are merged in, existing entries
  win, so the creator may edit the file.
- ``summary_path`` (``{"chapters": {"<chapter>": "summary"}}``) gives the prompt the previous
  chapter's summary and receives this chapter's.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import openai
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.pipeline.errors import PipelineError, VideoPipelineError
from services.pipeline.providers.script import script_template
from services.scheduler.atomic_file import write_atomic

if TYPE_CHECKING:
    import httpx
    import httpx2

__all__ = ["LLMAuthError", "LLMConfig", "NarrationAnswer", "ScriptResult", "write_script"]

logger = logging.getLogger(__name__)

STAGE = "GenerateScript"
TITLE_LIMIT = 100
SCHEMA_NAME = "narration_script"
_ERROR_LIMIT = 1500  # characters of a validation error echoed back to the model
_VIETNAMESE = re.compile(r"[đăâêôơưĐĂÂÊÔƠƯ\u1ea0-\u1ef9]")
_UNSUPPORTED_KEYWORDS = frozenset({"title", "default", "minLength", "maxLength"})

OPENAI_API_URL = "https://api.openai.com/v1"
"""OpenAI's own server: the SDK's default, named here so the SDK never reads OPENAI_BASE_URL."""


class LLMAuthError(PipelineError):
    """The server refused the API key (or none is configured): retrying will not help."""

    name = "LLMAuthError"


@dataclass(frozen=True)
class LLMConfig:
    """How to reach the model and how to show it the chapter.

    :param model: the chat model's name on that server.
    :param api_key: the key; ``None`` takes OPENAI_API_KEY, and a custom server without
        one gets ``"not-needed"`` (local servers accept any key).
    :param base_url: the server, e.g. ``http://localhost:11434/v1``; ``None`` is the SDK's
        default (OPENAI_BASE_URL, else https://api.openai.com/v1).
    :param vision: send the panels as images (the model must accept images).
    :param images_per_request: panels per request, so a request fits the context.
    :param image_max_side: longest side of a panel after downscaling, in pixels.
    :param image_detail: the image parts' ``detail`` (``low`` is cheapest, ``auto`` reads text).
    :param timeout_seconds: the SDK's timeout of one attempt.
    :param max_retries: the SDK's own retries of one request (see the module docstring).
    """

    model: str = "gpt-4o-mini"
    api_key: str | None = field(default=None, repr=False)  # never in a log through a repr
    base_url: str | None = None
    vision: bool = True
    images_per_request: int = 8
    image_max_side: int = 1024
    image_detail: Literal["low", "high", "auto"] = "auto"
    timeout_seconds: float = 120.0
    max_retries: int = 2

    def __post_init__(self) -> None:
        if self.images_per_request < 1:
            raise ValueError("images_per_request must be at least 1")
        if self.image_max_side < 64:
            raise ValueError("image_max_side must be at least 64 pixels")


@dataclass(frozen=True)
class ScriptResult:
    """A written script and what went wrong on the way.

    :param script: ``{"title", "description", "tags", "segments": [{"panel", "panels", "text"}],
        "summary", "writer": "openai" | "template", "model"}``.
    :param warnings: human-readable notes, e.g. why the template was used.
    """

    script: dict[str, Any]
    warnings: tuple[str, ...] = ()


class GlossaryEntry(BaseModel):
    """A name and the Vietnamese form the narration uses for it."""

    model_config = ConfigDict(str_strip_whitespace=True)

    name: str = Field(min_length=1, description="the name as written in the source (or romanised)")
    han_viet: str = Field(min_length=1, description="the Vietnamese (Hán-Việt) form used in the narration")


class AnswerSegment(BaseModel):
    """One narrated segment: a panel, or a group of consecutive panels."""

    model_config = ConfigDict(str_strip_whitespace=True)

    panels: list[str] = Field(min_length=1, description="panel file names, consecutive, in reading order")
    text: str = Field(min_length=1, description="the Vietnamese narration of these panels")


class NarrationAnswer(BaseModel):
    """The narration script of a manga chapter, or of the part of it given."""

    model_config = ConfigDict(str_strip_whitespace=True)

    title: str = Field(min_length=1, description="Vietnamese video title, at most 100 characters")
    description: str = Field(min_length=1, description="Vietnamese video description, 2-4 sentences")
    tags: list[str] = Field(description="5-10 search tags")
    summary: str = Field(min_length=1, description="summary of the chapter up to the last panel given")
    glossary: list[GlossaryEntry] = Field(description="names used, with their Vietnamese form")
    segments: list[AnswerSegment] = Field(min_length=1, description="the narration, in reading order")


class _InvalidAnswer(VideoPipelineError, ValueError):
    """An answer that does not validate; the message is what the model is told."""


def write_script(
    config: LLMConfig,
    *,
    panels_dir: Path,
    source: dict[str, Any],
    glossary_path: Path,
    summary_path: Path,
    http_client: httpx2.Client | httpx.Client | None = None,
    job_id: str = "",
) -> ScriptResult:
    """Narrate a chapter with the LLM (or the template, if it answers badly twice).

    :param config: the server, model and how the panels are sent.
    :param panels_dir: the folder holding ``source["panels"]``.
    :param source: the chapter's ``source.json``.
    :param glossary_path: the series' glossary (read, and updated with new names).
    :param summary_path: the series' chapter summaries (read, and updated with this one).
    :param http_client: an HTTP client for the SDK (tests pass a mock transport); the caller
        keeps ownership. ``None``: the SDK's own, closed on return.
    :param job_id: for the logs.
    :raises LLMAuthError: the key is refused or missing.
    :raises openai.APIError: the server failed after the SDK's retries.
    """
    panels = [str(name) for name in source.get("panels") or []]
    if not panels:
        raise ValueError("a chapter without panels cannot be narrated")
    log = {"job_id": job_id, "stage": STAGE}
    warnings: list[str] = []
    glossary = _read_json(glossary_path, "names", warnings)
    summaries = _read_json(summary_path, "chapters", warnings)
    previous = _previous_summary(summaries or {}, source.get("chapter"))
    client = _client(config, http_client)
    try:
        answers = _narrate(client, config, panels_dir, source, panels, dict(glossary or {}), previous, log)
    except _InvalidAnswer as exc:
        warning = f"LLM answer did not validate twice ({exc}); used the template narration"
        logger.warning("%s", warning, extra=log)
        return ScriptResult(_template_script(source, panels), (*warnings, warning))
    finally:
        if http_client is None:
            client.close()
    script = _merge(answers, config.model)
    _save_memory(glossary_path, glossary, answers, summary_path, summaries, source.get("chapter"), script)
    logger.info(
        "script written by %s: %d segments for %d panels",
        config.model,
        len(script["segments"]),
        len(panels),
        extra=log,
    )
    return ScriptResult(script, tuple(warnings))


# --- asking --------------------------------------------------------------------------


def _client(config: LLMConfig, http_client: Any) -> openai.OpenAI:
    """The SDK client with the configured timeout and retries; a missing key is LLMAuthError.

    The key and the server come from ``config`` alone (the settings read them): the SDK is
    never left to read OPENAI_API_KEY or OPENAI_BASE_URL from the environment itself.
    """
    key = config.api_key
    if not key and config.base_url:
        key = "not-needed"  # a local server takes any key
    if not key:
        raise LLMAuthError(
            "no API key for the script writer: set OPENAI_API_KEY (or OPENAI_API_KEY_FILE), "
            "or OPENAI_BASE_URL for a local server that needs none"
        )
    return openai.OpenAI(
        api_key=key,
        base_url=config.base_url or OPENAI_API_URL,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
        http_client=http_client,
    )


def _narrate(
    client: openai.OpenAI,
    config: LLMConfig,
    panels_dir: Path,
    source: Mapping[str, Any],
    panels: list[str],
    glossary: dict[str, str],
    previous: str | None,
    log: dict[str, str],
) -> list[NarrationAnswer]:
    """One validated answer per batch (a single batch when the model is text-only)."""
    lines = source.get("lines") or {}
    header = _chapter_header(source, previous)
    if not config.vision:
        messages = _text_messages(_system_prompt(glossary), header, panels, lines)
        return [_ask(client, config, messages, panels, log)]
    answers: list[NarrationAnswer] = []
    batches = [
        panels[i : i + config.images_per_request] for i in range(0, len(panels), config.images_per_request)
    ]
    for index, batch in enumerate(batches):
        story = answers[-1].summary if answers else None
        part = _part_note(index, len(batches), batch, len(panels), story)
        messages = _vision_messages(_system_prompt(glossary), header, part, batch, panels_dir, lines, config)
        answer = _ask(client, config, messages, batch, log)
        _learn(glossary, answer)  # later batches keep the names the earlier ones chose
        answers.append(answer)
    return answers


def _ask(
    client: openai.OpenAI,
    config: LLMConfig,
    messages: list[dict[str, Any]],
    expected: Sequence[str],
    log: dict[str, str],
) -> NarrationAnswer:
    """A validated answer for ``expected`` panels, asking again once with the error."""
    content = _complete(client, config, messages, expected, log)
    try:
        return _validate(content, expected)
    except _InvalidAnswer as exc:
        logger.warning("LLM answer invalid, asking again: %s", exc, extra=log)
        retry = [
            *messages,
            {"role": "assistant", "content": content or "(empty answer)"},
            {"role": "user", "content": _correction(str(exc), expected)},
        ]
    return _validate(_complete(client, config, retry, expected, log), expected)


def _complete(
    client: openai.OpenAI,
    config: LLMConfig,
    messages: list[dict[str, Any]],
    expected: Sequence[str],
    log: dict[str, str],
) -> str:
    """One Chat Completions call; the answer's text ("" when there is none)."""
    logger.info(
        "asking %s to narrate %s..%s (%d panels)",
        config.model,
        expected[0],
        expected[-1],
        len(expected),
        extra=log,
    )
    try:
        response = client.chat.completions.create(
            model=config.model, messages=messages, response_format=_response_format()
        )
    except openai.AuthenticationError as exc:
        raise LLMAuthError(
            f"the LLM server at {client.base_url} refused the API key (HTTP 401): OPENAI_API_KEY "
            "(or OPENAI_API_KEY_FILE) is wrong, revoked or meant for another server"
        ) from exc
    if not response.choices:
        return ""
    choice, usage = response.choices[0], response.usage
    logger.info(
        "LLM answered (finish_reason %s, %s prompt + %s completion tokens)",
        choice.finish_reason,
        getattr(usage, "prompt_tokens", "?"),
        getattr(usage, "completion_tokens", "?"),
        extra=log,
    )
    if choice.message.content is None and getattr(choice.message, "refusal", None):
        return f"(refused: {choice.message.refusal})"
    return choice.message.content or ""


def _response_format() -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": _wire_schema(NarrationAnswer)},
    }


def _wire_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as strict mode wants it: refs inlined, every field required,
    no extra properties, no keywords strict mode rejects (lengths are checked here instead)."""
    schema = model.model_json_schema()
    return _strict(schema, schema.get("$defs", {}))


def _strict(node: Mapping[str, Any], defs: Mapping[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        return _strict(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _UNSUPPORTED_KEYWORDS or key == "$defs":
            continue
        if key == "properties":
            out[key] = {name: _strict(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _strict(value, defs)
        else:
            out[key] = value
    if out.get("type") == "object":
        out["required"] = list(out.get("properties", {}))
        out["additionalProperties"] = False
    return out


# --- checking ------------------------------------------------------------------------


def _validate(content: str, expected: Sequence[str]) -> NarrationAnswer:
    """The answer parsed and checked against the panels it had to cover."""
    try:
        answer = NarrationAnswer.model_validate_json(_unfence(content))
    except ValidationError as exc:
        raise _InvalidAnswer(_describe(exc)) from None
    _check_panels(answer, expected)
    narration = unicodedata.normalize("NFC", " ".join(s.text for s in answer.segments))
    if not _VIETNAMESE.search(narration):
        raise _InvalidAnswer("the segments' text is not Vietnamese: write the narration in Vietnamese")
    return answer


def _unfence(content: str) -> str:
    """The JSON of an answer a server wrapped in a Markdown code fence anyway."""
    text = content.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "answer"
        parts.append(f"{where}: {error['msg']}")
    return _clip("; ".join(parts), _ERROR_LIMIT)


def _check_panels(answer: NarrationAnswer, expected: Sequence[str]) -> None:
    """Every panel named exists and every expected one is covered once, in order."""
    named = [panel for segment in answer.segments for panel in segment.panels]
    unknown = [panel for panel in named if panel not in expected]
    if unknown:
        raise _InvalidAnswer(f"unknown panel names {unknown}: use only {list(expected)}")
    twice = sorted({panel for panel in named if named.count(panel) > 1})
    if twice:
        raise _InvalidAnswer(
            f"panels {twice} are in more than one segment: each panel belongs to exactly one"
        )
    missing = [panel for panel in expected if panel not in named]
    if missing:
        raise _InvalidAnswer(f"panels {missing} are not narrated: every panel must be in a segment")
    if named != list(expected):
        raise _InvalidAnswer(f"segments are out of reading order: the panels must come as {list(expected)}")


# --- prompts -------------------------------------------------------------------------

_INSTRUCTIONS = """\
You write the narration of a Vietnamese YouTube channel that retells manga chapters \
(a "review truyện tranh" recap). One narrator speaks to the viewers.

Rules:
- Write every text field in natural, lively Vietnamese with full diacritics.
- Narrate the panels in reading order. Each segment lists in "panels" the file names it covers: \
one panel, or a group of consecutive panels that belong together. Every panel you are given \
appears in exactly one segment, in order; write the file names exactly as given.
- A segment's "text" tells, like a storyteller, what its panels show and what happens: who acts, \
who says what, how they feel. 1-4 sentences. No file names, panel numbers or Markdown in "text".
- Use names exactly as the glossary below gives them. For a new character or place name, choose \
its Vietnamese form (Hán-Việt for a Chinese, Japanese or Korean name when usual) and list it in \
"glossary" (name as in the source -> Vietnamese form).
- "title": a catchy Vietnamese video title with the series and chapter, at most 100 characters.
- "description": 2-4 sentences for the YouTube description, without spoilers of the ending.
- "tags": 5-10 short search tags (Vietnamese or English).
- "summary": 3-6 sentences summarising the chapter up to the last panel you were given \
(earlier parts included), for continuity.
Answer with the JSON object only."""


def _system_prompt(glossary: Mapping[str, str]) -> str:
    if not glossary:
        return f"{_INSTRUCTIONS}\n\nGlossary: none yet for this series."
    names = "\n".join(f"- {name} -> {vietnamese}" for name, vietnamese in sorted(glossary.items()))
    return f"{_INSTRUCTIONS}\n\nGlossary (use exactly these names):\n{names}"


def _chapter_header(source: Mapping[str, Any], previous: str | None) -> str:
    lines = [
        f"Series: {source.get('manga_title') or source.get('title')}",
        f"Chapter: {source.get('chapter')} ({source.get('title')})",
        f"Previous chapter: {previous}" if previous else "Previous chapter: no summary known.",
    ]
    return "\n".join(lines)


def _known_line(panel: str, lines: Mapping[str, Any]) -> str:
    line = lines.get(panel) or {}
    speaker, said = str(line.get("speaker") or "").strip(), str(line.get("text") or "").strip()
    if not said:
        return ""
    return f" (known line: {speaker}: {said})" if speaker else f" (known text: {said})"


def _text_messages(
    system: str, header: str, panels: Sequence[str], lines: Mapping[str, Any]
) -> list[dict[str, Any]]:
    listing = "\n".join(f"- {panel}{_known_line(panel, lines)}" for panel in panels)
    user = (
        f"{header}\n\nYou cannot see the pages; narrate from what is known. "
        f"The chapter's {len(panels)} panels, in reading order:\n{listing}\n\n"
        "Narrate all of them; title, description, tags and summary cover the whole chapter."
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _part_note(index: int, count: int, batch: Sequence[str], total: int, story: str | None) -> str:
    where = f"Part {index + 1} of {count}: panels {batch[0]} to {batch[-1]} ({len(batch)} of {total})."
    before = f"The chapter so far: {story}" if story else "This is the start of the chapter."
    if index + 1 < count:
        after = "More panels follow in the next part; narrate only these."
    else:
        after = "This is the last part: title, description, tags and summary cover the whole chapter."
    return f"{where}\n{before}\n{after}\nThe panels, in reading order:"


def _vision_messages(
    system: str,
    header: str,
    part: str,
    batch: Sequence[str],
    panels_dir: Path,
    lines: Mapping[str, Any],
    config: LLMConfig,
) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = [{"type": "text", "text": f"{header}\n\n{part}"}]
    for panel in batch:
        content.append({"type": "text", "text": f"Panel {panel}{_known_line(panel, lines)}"})
        content.append(
            {
                "type": "image_url",
                "image_url": {
                    "url": _data_url(panels_dir / panel, config.image_max_side),
                    "detail": config.image_detail,
                },
            }
        )
    return [{"role": "system", "content": system}, {"role": "user", "content": content}]


def _data_url(path: Path, max_side: int) -> str:
    """The panel downscaled to ``max_side`` as a base64 JPEG data URL (transparency on white)."""
    with Image.open(path) as opened:
        image = opened.convert("RGBA") if opened.mode in ("RGBA", "LA", "P") else opened.convert("RGB")
    if image.mode == "RGBA":
        flat = Image.new("RGB", image.size, "white")
        flat.paste(image, mask=image.getchannel("A"))
        image = flat
    image.thumbnail((max_side, max_side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _correction(error: str, expected: Sequence[str]) -> str:
    return (
        f"That answer is not usable: {error}\n"
        f"Answer again with the complete JSON object, covering exactly the panels {list(expected)} in order."
    )


# --- results and memory --------------------------------------------------------------


def _merge(answers: Sequence[NarrationAnswer], model: str) -> dict[str, Any]:
    """The script: every batch's segments in order; title and the rest from the last batch."""
    last = answers[-1]
    segments = [
        {"panel": segment.panels[0], "panels": list(segment.panels), "text": segment.text}
        for answer in answers
        for segment in answer.segments
    ]
    tags = list(dict.fromkeys(tag.strip() for tag in last.tags if tag.strip()))
    return {
        "title": _clip(last.title, TITLE_LIMIT),
        "description": last.description,
        "tags": tags,
        "segments": segments,
        "summary": last.summary,
        "writer": "openai",
        "model": model,
    }


def _template_script(source: Mapping[str, Any], panels: list[str]) -> dict[str, Any]:
    script = script_template.narrate(str(source.get("title") or ""), panels, source.get("lines") or {})
    for segment in script["segments"]:
        segment["panels"] = [segment["panel"]]
    script["title"] = _clip(script["title"], TITLE_LIMIT)
    return {**script, "summary": "", "writer": "template", "model": None}


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _learn(glossary: dict[str, str], answer: NarrationAnswer) -> bool:
    """Add the answer's new names to ``glossary`` (existing entries win); whether any was new."""
    added = False
    for entry in answer.glossary:
        if entry.name not in glossary:
            glossary[entry.name] = entry.han_viet
            added = True
    return added


def _read_json(path: Path, key: str, warnings: list[str]) -> dict[str, str] | None:
    """``path``'s ``key`` mapping; {} if the file is missing, None (and a warning) if unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        warnings.append(f"{path} is unreadable ({exc}); it was neither used nor updated")
        return None
    entries = data.get(key) if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        warnings.append(f"{path} has no {key!r} object; it was neither used nor updated")
        return None
    return {str(name): value for name, value in entries.items() if isinstance(value, str)}


def _chapter_number(chapter: object) -> float | None:
    try:
        return float(str(chapter))
    except ValueError:
        return None


def _previous_summary(summaries: Mapping[str, str], chapter: object) -> str | None:
    """The summary of the highest-numbered chapter before ``chapter``, if any."""
    current = _chapter_number(chapter)
    if current is None:
        return None
    earlier = [(number, key) for key in summaries if (number := _chapter_number(key)) is not None]
    earlier = [(number, key) for number, key in earlier if number < current]
    return summaries[max(earlier)[1]] if earlier else None


def _save_memory(
    glossary_path: Path,
    glossary: dict[str, str] | None,
    answers: Sequence[NarrationAnswer],
    summary_path: Path,
    summaries: dict[str, str] | None,
    chapter: object,
    script: Mapping[str, Any],
) -> None:
    """Merge the new names into the glossary and record this chapter's summary."""
    if glossary is not None:
        merged = dict(glossary)
        if any([_learn(merged, answer) for answer in answers]):
            _update_json(glossary_path, "names", merged)
    if summaries is not None and chapter is not None:
        _update_json(summary_path, "chapters", {**summaries, str(chapter): script["summary"]})


def _update_json(path: Path, key: str, entries: Mapping[str, str]) -> None:
    """Replace ``key`` in the JSON file at ``path``, keeping its other keys."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        data = {}
    kept = data.get(key) if isinstance(data.get(key), dict) else {}
    data = {"version": 1, **data, key: {**kept, **entries}}  # entries this module skipped stay
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(data, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))

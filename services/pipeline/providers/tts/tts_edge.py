"""The online voice: Microsoft Edge's neural text-to-speech (edge-tts), with subtitle cues.

``speak_segments(texts, out_dir, voice)`` speaks each narration segment into
``out_dir/seg-001.wav`` (24 kHz mono 16-bit, what the renderer reads with ``wave``) and
writes ``seg-001.cues.json`` next to it: the voice used, the length and the subtitle lines
timed from the service's word boundaries. Segments are spoken at most
``EdgeVoice.concurrency`` at once; a segment whose two files exist is not spoken again
(a retried stage).

A failed attempt (no audio, an HTTP 403 on the websocket upgrade, a timeout, a dropped
connection) is retried with exponential backoff and jitter (the providers' shared
``retry_policy``); after ``attempts`` failures the fallback voice gets as many; then
``EdgeTTSUnavailable`` says which segment, which voices and the last error. There is no
silent fallback to the embedded voice: the caller decides.

``cues_from_words`` is the pure part: word boundaries in, readable subtitle lines out,
spelled (punctuation included) as in the segment's original text.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import re
import unicodedata
import wave
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import edge_tts
import imageio_ffmpeg
from edge_tts.exceptions import EdgeTTSException

from services.pipeline.errors import VideoPipelineError
from services.pipeline.providers.retry_policy import RetryEvent, RetryPolicy, backoff
from services.scheduler.atomic_file import fsync_dir, write_atomic

__all__ = [
    "CUES_VERSION",
    "Cue",
    "EdgeTTSUnavailable",
    "EdgeVoice",
    "SpokenSegment",
    "backoff_seconds",
    "cues_from_words",
    "speak_segments",
    "ticks_to_seconds",
]

logger = logging.getLogger(__name__)

CUES_VERSION = 1
TICKS_PER_SECOND = 10_000_000  # edge-tts offsets and durations are 100 ns ticks
SAMPLE_RATE = 24_000
MAX_BACKOFF_SECONDS = 30.0
JITTER = 0.1  # up to 10 % added to each backoff, so parallel segments do not retry in step

_STAGE = "GenerateTTS"
_SENTENCE_END = ".!?…"
_CLAUSE_END = ",;:"
_CLOSERS = "\"'”’»)]}"
_SEARCH_CHARS = 80  # how far ahead of the last matched word a spoken word is looked for
_RESPELL_TOKENS = 4  # at most this many written words stand for unmatched spoken ones ("2024")
_RETRYABLE: tuple[type[BaseException], ...] = (EdgeTTSException, aiohttp.ClientError, TimeoutError)

Sleep = Callable[[float], Awaitable[Any]]
WordTiming = tuple[float, float, str]  # start seconds, duration seconds, the word


@dataclass(frozen=True)
class EdgeVoice:
    """How edge-tts speaks.

    :param voice: the edge-tts voice (``vi-VN-HoaiMyNeural``).
    :param fallback_voice: tried when ``voice`` keeps failing; ``None`` for none.
    :param rate: speaking rate, e.g. ``+10%``.
    :param pitch: pitch shift, e.g. ``-2Hz``.
    :param concurrency: segments spoken at once (kept low: the service throttles).
    :param attempts: attempts per segment and per voice.
    :param base_delay: first backoff in seconds; it doubles per attempt, capped at 30 s.
    :param timeout_seconds: limit of one attempt (connect, speak, receive).
    """

    voice: str = "vi-VN-HoaiMyNeural"
    fallback_voice: str | None = "vi-VN-NamMinhNeural"
    rate: str = "+0%"
    pitch: str = "+0Hz"
    concurrency: int = 2
    attempts: int = 4
    base_delay: float = 1.0
    timeout_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, not {self.attempts}")
        if self.base_delay < 0:
            raise ValueError(f"base_delay must not be negative, not {self.base_delay}")
        if self.timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, not {self.timeout_seconds}")

    def voices(self) -> tuple[str, ...]:
        """The voices to try, in order: the main one, then a distinct fallback."""
        if self.fallback_voice and self.fallback_voice != self.voice:
            return (self.voice, self.fallback_voice)
        return (self.voice,)


@dataclass(frozen=True)
class Cue:
    """One subtitle line, in seconds from the start of its segment."""

    start: float
    end: float
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text}


@dataclass(frozen=True)
class SpokenSegment:
    """A spoken segment: its WAV, length, the voice that spoke it and its subtitle lines."""

    index: int
    path: Path
    seconds: float
    voice: str
    cues: tuple[Cue, ...]


class EdgeTTSUnavailable(VideoPipelineError):
    """edge-tts stayed unreachable or kept failing for a segment, with every voice tried."""

    def __init__(self, segment: int, voices: tuple[str, ...], attempts: int, last_error: str) -> None:
        super().__init__(
            f"edge-tts could not speak segment {segment:03d}: {attempts} attempt(s) "
            f"each with {', '.join(voices)} failed; last error: {last_error} "
            "(check the network, or use TTS_ENGINE=local)"
        )
        self.segment = segment
        self.voices = voices
        self.attempts = attempts
        self.last_error = last_error

    def __str__(self) -> str:
        return self.message


# -- pure: time, backoff, subtitle lines ------------------------------------------------------


def ticks_to_seconds(ticks: int) -> float:
    """edge-tts's 100 ns ticks as seconds."""
    return ticks / TICKS_PER_SECOND


def backoff_seconds(attempt: int, base_delay: float, *, jitter: float = 0.0) -> float:
    """Wait after failed attempt ``attempt`` (1-based): base * 2**(attempt-1), capped, times 1+jitter.

    The arithmetic of the voice's :class:`RetryPolicy` (see ``_voice_policy``).
    """
    return backoff(attempt, base=base_delay, cap=MAX_BACKOFF_SECONDS, jitter=jitter)


def _voice_policy(voice: EdgeVoice) -> RetryPolicy:
    """Retries of one voice: ``voice.attempts`` tries, ``base_delay`` doubling to 30 s, up to 10 % more."""
    return RetryPolicy(
        attempts=voice.attempts,
        base=voice.base_delay,
        cap=MAX_BACKOFF_SECONDS,
        jitter=JITTER,
        name="edge-tts",
    )


@dataclass(frozen=True)
class _Word:
    start: float
    end: float
    text: str  # as shown; "" when an earlier word took its spelling from the original


def cues_from_words(
    words: Sequence[WordTiming],
    *,
    text: str | None = None,
    max_chars: int = 42,
    max_seconds: float = 4.0,
    gap_seconds: float = 0.6,
) -> list[Cue]:
    """Group word boundaries ``(start_s, duration_s, word)`` into subtitle lines.

    A line ends after a sentence's end (``. ! ? …``), after ``, ; :`` once it is half
    ``max_chars`` long, before a word that would make it longer than ``max_chars`` or
    ``max_seconds``, and before a pause longer than ``gap_seconds``. With ``text`` (the
    segment as written) each word is shown as spelled there, punctuation included: edge-tts
    reports bare words. A word not found in ``text`` is shown as the service reported it.
    """
    shown = _align(words, text) if text is not None else _bare(words)
    return _group(shown, max_chars=max_chars, max_seconds=max_seconds, gap_seconds=gap_seconds)


def _has_letters(value: str) -> bool:
    return any(char.isalnum() for char in value)


def _fold(value: str) -> str:
    """Lower case, one character for one, so positions in the result are positions in ``value``."""
    return "".join(lower if len(lower := char.lower()) == 1 else char for char in value)


def _bare(words: Sequence[WordTiming]) -> list[_Word]:
    shown: list[_Word] = []
    for start, duration, raw in words:
        spoken = raw.strip()
        if not spoken:
            continue
        if not _has_letters(spoken) and shown:  # a punctuation event: it belongs to the word before
            shown[-1] = replace(shown[-1], text=shown[-1].text + spoken)
            continue
        shown.append(_Word(start, start + duration, spoken))
    return shown


def _find_word(folded: str, key: str, cursor: int) -> int:
    """Where ``key`` starts as a whole word in ``folded`` within reach of ``cursor``; -1 if not."""
    pos = folded.find(key, cursor, cursor + _SEARCH_CHARS + len(key))
    while pos >= 0:
        end = pos + len(key)
        before_ok = pos == 0 or not folded[pos - 1].isalnum()
        after_ok = end == len(folded) or not folded[end].isalnum()
        if before_ok and after_ok:
            return pos
        pos = folded.find(key, pos + 1, cursor + _SEARCH_CHARS + len(key))
    return -1


def _opening_marks(gap: str) -> str:
    """Punctuation glued to the front of the next word (an opening quote), if any."""
    tail = re.search(r"\S*$", gap)
    marks = tail.group() if tail else ""
    return "" if _has_letters(marks) else marks


def _closing_end(original: str, end: int) -> int:
    """Extend a word's end over the punctuation glued to it (``chào!»``)."""
    while end < len(original) and not original[end].isspace() and not original[end].isalnum():
        end += 1
    return end


def _respell(shown: list[_Word], unmatched: list[int], gap: str) -> bool:
    """Words the text did not contain (``ba`` for ``3``) take the few words skipped meanwhile."""
    tokens = gap.split()
    if not unmatched or not _has_letters(gap) or len(tokens) > min(_RESPELL_TOKENS, len(unmatched) + 1):
        return False
    first, *rest = unmatched
    shown[first] = replace(shown[first], text=" ".join(tokens))
    for index in rest:
        shown[index] = replace(shown[index], text="")
    return True


def _standalone_marks(gap: str) -> str:
    """Signs standing alone between words (``&``, ``—``): nobody speaks them, the line shows them."""
    return " ".join(token for token in gap.split() if not _has_letters(token))


def _keep_skipped(shown: list[_Word], unmatched: list[int], gap: str) -> str:
    """Place the text skipped before a matched word; returns what goes in front of that word."""
    if _respell(shown, unmatched, gap):
        return ""
    marks = _standalone_marks(gap)
    if marks and shown:
        shown[-1] = replace(shown[-1], text=f"{shown[-1].text} {marks}")
        return ""
    return f"{marks} " if marks else ""


def _align(words: Sequence[WordTiming], text: str) -> list[_Word]:
    original = unicodedata.normalize("NFC", text)
    folded = _fold(original)
    cursor = 0
    shown: list[_Word] = []
    unmatched: list[int] = []
    for start, duration, raw in words:
        spoken = unicodedata.normalize("NFC", raw).strip()
        if not _has_letters(spoken):
            continue  # empty or punctuation: the original text carries its own
        pos = _find_word(folded, _fold(spoken), cursor)
        if pos < 0:
            unmatched.append(len(shown))
            shown.append(_Word(start, start + duration, spoken))
            continue
        gap = original[cursor:pos]
        opening = _opening_marks(gap)
        front = _keep_skipped(shown, unmatched, gap[: len(gap) - len(opening)])
        unmatched = []
        end = _closing_end(original, pos + len(spoken))
        shown.append(_Word(start, start + duration, front + opening + original[pos:end]))
        cursor = end
    if cursor:  # nothing matched at all: the text is not what was spoken, keep the service's words
        _keep_skipped(shown, unmatched, original[cursor:])
    return shown


def _ends_sentence(word: str) -> bool:
    stripped = word.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _SENTENCE_END


def _ends_clause(word: str) -> bool:
    stripped = word.rstrip(_CLOSERS)
    return bool(stripped) and stripped[-1] in _CLAUSE_END


def _line_text(line: Sequence[_Word]) -> str:
    return " ".join(word.text for word in line if word.text)


def _group(words: Sequence[_Word], *, max_chars: int, max_seconds: float, gap_seconds: float) -> list[Cue]:
    lines: list[list[_Word]] = []
    line: list[_Word] = []
    for word in words:
        if line:
            longer = len(_line_text([*line, word])) > max_chars
            slower = word.end - line[0].start > max_seconds
            paused = word.start - line[-1].end > gap_seconds
            if longer or slower or paused:
                lines.append(line)
                line = []
        line.append(word)
        long_ish = len(_line_text(line)) >= max_chars // 2
        if _ends_sentence(word.text) or (long_ish and _ends_clause(word.text)):
            lines.append(line)
            line = []
    if line:
        lines.append(line)
    return [
        Cue(
            start=round(float(chosen[0].start), 3),
            end=round(float(chosen[-1].end), 3),
            text=_line_text(chosen),
        )
        for chosen in lines
        if _line_text(chosen)
    ]


# -- I/O: the service, ffmpeg, the files ------------------------------------------------------


def _log_extra(job_id: str) -> dict[str, str]:
    return {"job_id": job_id, "stage": _STAGE}


def _paths(out_dir: Path, index: int) -> tuple[Path, Path]:
    stem = f"seg-{index:03d}"
    return out_dir / f"{stem}.wav", out_dir / f"{stem}.cues.json"


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def _cues_record(index: int, text: str, voice: str, seconds: float, cues: Sequence[Cue]) -> dict[str, Any]:
    return {
        "version": CUES_VERSION,
        "index": index,
        "voice": voice,
        "seconds": round(seconds, 3),
        "text": text,
        "cues": [cue.as_json() for cue in cues],
    }


def _load_existing(index: int, wav: Path, cues_path: Path, job_id: str) -> SpokenSegment | None:
    """The segment a previous run finished, or None when its files are missing or unreadable."""
    if not (wav.exists() and cues_path.exists()):
        return None
    try:
        record = json.loads(cues_path.read_text(encoding="utf-8"))
        if record.get("version") != CUES_VERSION:
            raise ValueError(f"cues version {record.get('version')!r}, expected {CUES_VERSION}")
        cues = tuple(Cue(float(c["start"]), float(c["end"]), str(c["text"])) for c in record["cues"])
        return SpokenSegment(index, wav, _wav_seconds(wav), str(record["voice"]), cues)
    except (OSError, ValueError, KeyError, TypeError, wave.Error, EOFError) as error:
        logger.warning(
            "segment %03d: existing files unusable (%s); speaking it again",
            index,
            error,
            extra=_log_extra(job_id),
        )
        return None


async def _synthesize_once(text: str, voice_name: str, voice: EdgeVoice) -> tuple[bytes, list[WordTiming]]:
    """One edge-tts request: the MP3 bytes and the word boundaries (start_s, duration_s, word)."""
    whole_seconds = max(1, math.ceil(voice.timeout_seconds))
    communicate = edge_tts.Communicate(
        text,
        voice_name,
        rate=voice.rate,
        pitch=voice.pitch,
        boundary="WordBoundary",
        connect_timeout=whole_seconds,
        receive_timeout=whole_seconds,
    )
    audio = bytearray()
    words: list[WordTiming] = []
    async with asyncio.timeout(voice.timeout_seconds), aclosing(communicate.stream()) as stream:
        async for chunk in stream:
            if chunk["type"] == "audio":
                audio += chunk["data"]
            elif chunk["type"] == "WordBoundary":
                words.append(
                    (ticks_to_seconds(chunk["offset"]), ticks_to_seconds(chunk["duration"]), chunk["text"])
                )
    return bytes(audio), words


def _describe(error: BaseException) -> str:
    if isinstance(error, aiohttp.WSServerHandshakeError):
        return f"websocket handshake refused: HTTP {error.status} {error.message}".strip()
    if isinstance(error, TimeoutError):
        return "timed out"
    return f"{type(error).__name__}: {error}"


async def _synthesize(
    index: int, text: str, voice: EdgeVoice, *, sleep: Sleep, job_id: str
) -> tuple[bytes, list[WordTiming], str]:
    """Speak with retries and backoff, then the fallback voice; EdgeTTSUnavailable at the end."""
    voices = voice.voices()
    policy = _voice_policy(voice)
    last_error: BaseException | None = None
    for position, name in enumerate(voices):
        if position:
            logger.warning(
                "segment %03d: voice %s kept failing; trying the fallback voice %s",
                index,
                voices[position - 1],
                name,
                extra=_log_extra(job_id),
            )

        def log_retry(event: RetryEvent, name: str = name) -> None:
            logger.warning(
                "segment %03d: %s attempt %d/%d failed (%s); retrying in %.1f s",
                index,
                name,
                event.attempt,
                event.attempts,
                _describe(event.error),
                event.delay,
                extra=_log_extra(job_id),
            )

        try:
            audio, words = await policy.acall(
                functools.partial(_synthesize_once, text, name, voice),
                sleep=sleep,
                retry_on=_RETRYABLE,
                on_retry=log_retry,
            )
        except _RETRYABLE as error:
            last_error = error
            logger.warning(
                "segment %03d: %s attempt %d/%d failed (%s)",
                index,
                name,
                voice.attempts,
                voice.attempts,
                _describe(error),
                extra=_log_extra(job_id),
            )
            continue
        return audio, words, name
    described = _describe(last_error) if last_error is not None else "no attempt made"
    raise EdgeTTSUnavailable(index, voices, voice.attempts, described) from last_error


async def _mp3_to_wav(mp3: bytes, wav: Path) -> None:
    """Decode ``mp3`` into ``wav`` (24 kHz mono s16) with the bundled ffmpeg, atomically."""
    mp3_temp = wav.with_name(f".{wav.stem}.{os.getpid()}.mp3")
    wav_temp = wav.with_name(f".{wav.stem}.{os.getpid()}.part.wav")
    mp3_temp.write_bytes(mp3)
    try:
        process = await asyncio.create_subprocess_exec(
            imageio_ffmpeg.get_ffmpeg_exe(),
            *("-nostdin", "-loglevel", "error", "-y", "-i", str(mp3_temp), "-vn", "-map_metadata", "-1"),
            *("-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", str(wav_temp)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            _, stderr = await process.communicate()
        except BaseException:  # cancelled: do not leave ffmpeg running
            process.kill()
            await process.wait()
            raise
        if process.returncode != 0 or not wav_temp.exists():
            message = stderr.decode("utf-8", "replace").strip()[-300:]
            raise RuntimeError(f"ffmpeg could not decode edge-tts audio for {wav.name}: {message}")
        os.replace(wav_temp, wav)
    finally:
        mp3_temp.unlink(missing_ok=True)
        wav_temp.unlink(missing_ok=True)


async def _speak_one(
    index: int,
    text: str,
    out_dir: Path,
    voice: EdgeVoice,
    limit: asyncio.Semaphore,
    *,
    sleep: Sleep,
    job_id: str,
    skip_existing: bool,
) -> SpokenSegment:
    wav, cues_path = _paths(out_dir, index)
    if skip_existing and (done := _load_existing(index, wav, cues_path, job_id)) is not None:
        logger.info("segment %03d already spoken; kept", index, extra=_log_extra(job_id))
        return done
    async with limit:
        audio, words, used = await _synthesize(index, text, voice, sleep=sleep, job_id=job_id)
        cues = tuple(cues_from_words(words, text=text))
        await _mp3_to_wav(audio, wav)
    seconds = _wav_seconds(wav)
    record = _cues_record(index, text, used, seconds, cues)
    write_atomic(cues_path, (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8"))
    fsync_dir(out_dir)
    logger.info(
        "segment %03d spoken by %s: %.2f s, %d subtitle lines",
        index,
        used,
        seconds,
        len(cues),
        extra=_log_extra(job_id),
    )
    return SpokenSegment(index, wav, seconds, used, cues)


async def speak_segments(
    texts: Sequence[str],
    out_dir: Path,
    voice: EdgeVoice,
    *,
    sleep: Sleep = asyncio.sleep,
    job_id: str = "",
    skip_existing: bool = True,
) -> list[SpokenSegment]:
    """Speak ``texts`` into ``out_dir/seg-NNN.wav`` (+ ``.cues.json``), numbered from 1.

    :param texts: the segments' narration, in order; none may be blank.
    :param out_dir: the folder of the files (created).
    :param voice: voices, prosody, concurrency, retries and timeout.
    :param sleep: the backoff's wait (tests pass a recorder).
    :param job_id: for the log.
    :param skip_existing: keep a segment whose WAV and cues file exist instead of speaking it.
    :raises EdgeTTSUnavailable: a segment failed with every voice; the others are cancelled.
    """
    for index, text in enumerate(texts, start=1):
        if not text.strip():
            raise ValueError(f"nothing to say: segment {index:03d} is empty")
    out_dir.mkdir(parents=True, exist_ok=True)
    limit = asyncio.Semaphore(voice.concurrency)
    tasks = [
        asyncio.create_task(
            _speak_one(
                index,
                text,
                out_dir,
                voice,
                limit,
                sleep=sleep,
                job_id=job_id,
                skip_existing=skip_existing,
            ),
            name=f"edge-tts-seg-{index:03d}",
        )
        for index, text in enumerate(texts, start=1)
    ]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise

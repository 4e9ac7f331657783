"""Redaction: which keys hide their values, which secrets inside text are cut out."""

from __future__ import annotations

import pytest

from services.scheduler.redaction import REDACTED, is_secret_key, redact, scrub_text


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("token", True), ("Token", True), ("task_token", True), ("refresh-token", True),
        ("continuation_token", True), ("client_secret", True), ("PASSWORD", True), ("passwd", True),
        ("api_key", True), ("apiKey", True), ("openai_api_key", True), ("Authorization", True),
        ("credentials", True), ("webhook_url", True), ("key", True), ("aws_access_key", True),
        ("x-signature", True), ("cookie", True),
        ("stage", False), ("pipeline", False), ("content", False), ("keyword", False),
        ("monkey", False), ("author", False), ("kind", False), ("resume_mark", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Xin chào thế giới", "Xin chào thế giới"),
        ("https://user:hunter2@example.com/x", f"https://user:{REDACTED}@example.com/x"),
        ("https://hooks.slack.com/services/T0/B0/abcdef", f"https://hooks.slack.com/services/{REDACTED}"),
        ("post https://discord.com/api/webhooks/123/tok failed",
         f"post https://discord.com/api/webhooks/{REDACTED} failed"),
        ("GET https://api.x.com/v1?id=3&api_key=sk-123&x=1: 401",
         f"GET https://api.x.com/v1?id=3&api_key={REDACTED}&x=1: 401"),
        ("https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Credential=AK%2F1",
         f"https://b.s3.amazonaws.com/k?X-Amz-Signature={REDACTED}&X-Amz-Credential={REDACTED}"),
        ("Authorization: Bearer abcdefghijklmnop", f"Authorization: Bearer {REDACTED}"),
        ("https://example.com/page?id=7", "https://example.com/page?id=7"),
    ],
    ids=["plain", "userinfo", "slack", "discord", "query", "s3-presigned", "bearer", "harmless-url"],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


def test_redact_walks_dicts_and_lists_keeps_nulls_and_cuts_long_strings() -> None:
    record = {
        "outputs": {"StartRenderer": {"task_token": "t-1", "instance_id": "pid-1"}},
        "settings": [{"Client-Secret": "s"}, {"name": "x"}],
        "refresh_token": None,
        "notes": "n" * 30,
        "count": 3,
    }
    original = repr(record)
    assert redact(record, max_chars=10) == {
        "outputs": {"StartRenderer": {"task_token": REDACTED, "instance_id": "pid-1"}},
        "settings": [{"Client-Secret": REDACTED}, {"name": "x"}],
        "refresh_token": None,
        "notes": "n" * 10 + "…[20 more characters]",
        "count": 3,
    }
    assert repr(record) == original  # the input is left as it was
    cut_out = redact({"error": "GET https://x.io/?token=abc failed"})["error"]
    assert cut_out == f"GET https://x.io/?token={REDACTED} failed"

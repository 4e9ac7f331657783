"""script_llm against a mock OpenAI-compatible server (httpx2.MockTransport): no network."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import httpx2
import openai
import pytest
from PIL import Image

from services.pipeline.providers.script import script_llm
from services.pipeline.providers.script.script_llm import LLMAuthError, LLMConfig, ScriptResult, write_script

BASE_URL = "http://llm.test/v1"
KEY = "sk-test-secret-123"

Reply = httpx2.Response | Callable[[httpx2.Request], httpx2.Response]


class Server:
    """Serves the queued replies in order and records each request's JSON body and headers."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[httpx2.Headers] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(json.loads(request.content))
        self.headers.append(request.headers)
        reply = self.replies.pop(0)
        return reply(request) if callable(reply) else reply

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))


def completion(content: str | None, finish_reason: str = "stop") -> httpx2.Response:
    """A Chat Completions answer in the shape OpenAI (and local servers) send."""
    return httpx2.Response(
        200,
        json={
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
        },
    )


def answer(
    groups: list[list[str]],
    *,
    title: str = "Cậu bé và con rồng - Chương 1: Cuộc gặp gỡ",
    summary: str = "Cậu bé gặp con rồng.",
    glossary: list[dict[str, str]] | None = None,
    text: str = "Cậu bé nhìn con rồng đang ngủ.",
) -> str:
    """A model's JSON answer with one segment per group of panels."""
    return json.dumps(
        {
            "title": title,
            "description": "Một cậu bé tìm thấy một con rồng. Chuyện gì sẽ xảy ra?",
            "tags": ["truyện tranh", "review truyện", "manga", "con rồng", "tóm tắt"],
            "summary": summary,
            "glossary": glossary or [],
            "segments": [{"panels": group, "text": text} for group in groups],
        },
        ensure_ascii=False,
    )


def per_panel(names: list[str]) -> list[list[str]]:
    return [[name] for name in names]


@pytest.fixture(autouse=True)
def no_env_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def chapter(tmp_path: Path) -> Callable[..., dict[str, Any]]:
    """Writes ``count`` tiny panels and returns the chapter's source.json dict."""

    def make(count: int, *, number: Any = 1, lines: dict[str, Any] | None = None) -> dict[str, Any]:
        panels_dir = tmp_path / "panels"
        panels_dir.mkdir(exist_ok=True)
        names = []
        for index in range(count):
            name = f"panel-{index + 1:03d}.png"
            mode = "RGBA" if index == 0 else "RGB"  # one panel with transparency
            Image.new(mode, (300, 2000), (20 * index, 100, 200)).save(panels_dir / name)
            names.append(name)
        return {
            "title": f"Cậu bé và con rồng - Chương {number}",
            "manga_id": "cau-be-va-con-rong",
            "manga_title": "Cậu bé và con rồng",
            "chapter": number,
            "panels": names,
            "lines": lines or {},
            "credits": "Cậu bé và con rồng",
        }

    return make


def run(
    tmp_path: Path,
    server: Server,
    source: dict[str, Any],
    **config: Any,
) -> ScriptResult:
    settings = {"model": "test-model", "api_key": KEY, "base_url": BASE_URL, "max_retries": 0, **config}
    return write_script(
        LLMConfig(**settings),
        panels_dir=tmp_path / "panels",
        source=source,
        glossary_path=tmp_path / "series" / "glossary.json",
        summary_path=tmp_path / "series" / "summaries.json",
        http_client=server.client(),
        job_id="job-test",
    )


def user_parts(body: dict[str, Any]) -> list[dict[str, Any]]:
    content = body["messages"][1]["content"]
    return content if isinstance(content, list) else [{"type": "text", "text": content}]


def system_prompt(body: dict[str, Any]) -> str:
    assert body["messages"][0]["role"] == "system"
    return body["messages"][0]["content"]


def texts(body: dict[str, Any]) -> list[str]:
    """The text parts of the user message, in order."""
    return [part["text"] for part in user_parts(body) if part["type"] == "text"]


def all_text(body: dict[str, Any]) -> str:
    return "\n".join(texts(body))


def test_valid_answer_gives_the_openai_script(tmp_path: Path, chapter) -> None:
    source = chapter(3)
    server = Server(completion(answer(per_panel(source["panels"]))))

    result = run(tmp_path, server, source, image_max_side=512)

    assert result.warnings == ()
    script = result.script
    assert (script["writer"], script["model"]) == ("openai", "test-model")
    assert [s["panel"] for s in script["segments"]] == source["panels"]
    assert [s["panels"] for s in script["segments"]] == per_panel(source["panels"])
    assert script["segments"][0]["text"].startswith("Cậu bé nhìn")
    assert script["title"] == "Cậu bé và con rồng - Chương 1: Cuộc gặp gỡ"
    assert script["summary"] == "Cậu bé gặp con rồng." and len(script["tags"]) == 5

    [body] = server.bodies
    assert body["model"] == "test-model"
    response_format = body["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "narration_script"
    assert response_format["json_schema"]["strict"] is True
    assert set(response_format["json_schema"]["schema"]["required"]) >= {"title", "segments", "summary"}
    parts = user_parts(body)
    images = [i for i, part in enumerate(parts) if part["type"] == "image_url"]
    assert len(images) == 3
    for panel, index in zip(source["panels"], images, strict=True):
        assert parts[index - 1] == {"type": "text", "text": f"Panel {panel}"}
        url = parts[index]["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        assert parts[index]["image_url"]["detail"] == "auto"
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            assert image.format == "JPEG" and max(image.size) == 512
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"


def test_a_segment_may_cover_consecutive_panels(tmp_path: Path, chapter) -> None:
    source = chapter(3)
    groups = [["panel-001.png", "panel-002.png"], ["panel-003.png"]]
    server = Server(completion(answer(groups)))

    script = run(tmp_path, server, source).script

    assert [s["panels"] for s in script["segments"]] == groups
    assert [s["panel"] for s in script["segments"]] == ["panel-001.png", "panel-003.png"]


def test_batches_are_narrated_in_order_with_the_story_so_far(tmp_path: Path, chapter) -> None:
    source = chapter(5)
    names = source["panels"]
    server = Server(
        completion(answer(per_panel(names[0:2]), summary="TÓM TẮT MỘT", title="tiêu đề 1")),
        completion(answer(per_panel(names[2:4]), summary="TÓM TẮT HAI", title="tiêu đề 2")),
        completion(answer(per_panel(names[4:5]), summary="TÓM TẮT CẢ CHƯƠNG", title="Tiêu đề cuối")),
    )

    result = run(tmp_path, server, source, images_per_request=2)

    assert len(server.bodies) == 3
    sent = [
        [part["image_url"] for part in user_parts(body) if part["type"] == "image_url"]
        for body in server.bodies
    ]
    assert [len(batch) for batch in sent] == [2, 2, 1]
    assert texts(server.bodies[1])[1:] == ["Panel panel-003.png", "Panel panel-004.png"]
    assert "TÓM TẮT MỘT" not in all_text(server.bodies[0])
    assert "TÓM TẮT MỘT" in all_text(server.bodies[1])
    assert "TÓM TẮT HAI" in all_text(server.bodies[2]) and "last part" in all_text(server.bodies[2])
    script = result.script
    assert [s["panel"] for s in script["segments"]] == names
    assert (script["title"], script["summary"]) == ("Tiêu đề cuối", "TÓM TẮT CẢ CHƯƠNG")
    saved = json.loads((tmp_path / "series" / "summaries.json").read_text(encoding="utf-8"))
    assert saved["chapters"] == {"1": "TÓM TẮT CẢ CHƯƠNG"}


def test_an_invalid_answer_is_asked_again_once_with_the_error(tmp_path: Path, chapter) -> None:
    source = chapter(2)
    server = Server(
        completion('{"title": "Chương 1", "segments": ['),
        completion(answer(per_panel(source["panels"]))),
    )

    result = run(tmp_path, server, source)

    assert result.warnings == () and result.script["writer"] == "openai"
    assert len(server.bodies) == 2
    first, second = server.bodies
    assert second["messages"][: len(first["messages"])] == first["messages"]
    bad, correction = second["messages"][len(first["messages"]) :]
    assert bad == {"role": "assistant", "content": '{"title": "Chương 1", "segments": ['}
    assert correction["role"] == "user"
    assert "Invalid JSON" in correction["content"] and "panel-002.png" in correction["content"]


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        pytest.param("not json at all", "Invalid JSON", id="not-json"),
        pytest.param(answer([["panel-001.png"]]), "['panel-002.png'] are not narrated", id="missing-panel"),
        pytest.param(
            answer([["panel-001.png"], ["panel-002.png"], ["panel-009.png"]]), "unknown panel", id="unknown"
        ),
        pytest.param(
            answer([["panel-001.png", "panel-002.png"], ["panel-002.png"]]),
            "more than one segment",
            id="twice",
        ),
        pytest.param(answer([["panel-002.png"], ["panel-001.png"]]), "out of reading order", id="order"),
        pytest.param(
            answer(per_panel(["panel-001.png", "panel-002.png"]), text="The boy looks at the dragon."),
            "not Vietnamese",
            id="english",
        ),
        pytest.param(
            answer(per_panel(["panel-001.png", "panel-002.png"]), text=" "),
            "segments.0.text",
            id="empty-text",
        ),
        pytest.param(json.dumps({"title": "Chương 1", "segments": []}), "summary", id="schema"),
        pytest.param(answer([[]]), "segments.0.panels", id="no-panels"),
    ],
)
def test_invalid_twice_falls_back_to_the_template(tmp_path: Path, chapter, bad: str, reason: str) -> None:
    source = chapter(2, lines={"panel-001.png": {"speaker": "Lan", "text": "Xin chào!"}})
    server = Server(completion(bad), completion(bad))

    result = run(tmp_path, server, source)

    assert len(server.bodies) == 2
    assert result.script["writer"] == "template" and result.script["model"] is None
    assert [s["panels"] for s in result.script["segments"]] == per_panel(source["panels"])
    assert "Lan nói: Xin chào!" in result.script["segments"][0]["text"]
    [warning] = result.warnings
    assert warning.startswith("LLM answer did not validate twice (") and "template" in warning
    assert reason in warning
    assert not (tmp_path / "series").exists()  # nothing learned from a failed answer


def test_text_only_mode_sends_metadata_and_the_previous_summary(tmp_path: Path, chapter) -> None:
    source = chapter(3, number=3, lines={"panel-002.png": {"speaker": "Lan", "text": "Rồng ơi!"}})
    summaries = tmp_path / "series" / "summaries.json"
    summaries.parent.mkdir()
    summaries.write_text(
        json.dumps({"chapters": {"1": "Chương một.", "2": "Lan tìm thấy trứng rồng.", "10": "Sau này."}}),
        encoding="utf-8",
    )
    server = Server(completion(answer(per_panel(source["panels"]), summary="Trứng nở ra rồng con.")))

    result = run(tmp_path, server, source, vision=False)

    [body] = server.bodies
    assert isinstance(body["messages"][1]["content"], str)
    assert all("image_url" not in json.dumps(message) for message in body["messages"])
    prompt = body["messages"][1]["content"]
    assert "Previous chapter: Lan tìm thấy trứng rồng." in prompt
    assert "Sau này." not in prompt and "Chương một." not in prompt
    assert all(panel in prompt for panel in source["panels"]) and "Lan: Rồng ơi!" in prompt
    assert result.script["writer"] == "openai"
    raw = summaries.read_bytes().decode("utf-8")
    assert "Trứng nở ra rồng con." in raw  # Vietnamese left readable
    saved = json.loads(raw)["chapters"]
    assert saved == {
        "1": "Chương một.",
        "2": "Lan tìm thấy trứng rồng.",
        "10": "Sau này.",
        "3": "Trứng nở ra rồng con.",
    }


def test_glossary_names_are_prompted_and_new_ones_merged(tmp_path: Path, chapter) -> None:
    source = chapter(4)
    names = source["panels"]
    glossary = tmp_path / "series" / "glossary.json"
    glossary.parent.mkdir()
    glossary.write_text(json.dumps({"names": {"Ryuu": "Long"}, "note": "sửa tay"}), encoding="utf-8")
    server = Server(
        completion(
            answer(
                per_panel(names[:2]),
                glossary=[{"name": "Ryuu", "han_viet": "Rồng"}, {"name": "Kenji", "han_viet": "Kiện Nhị"}],
            )
        ),
        completion(answer(per_panel(names[2:]), glossary=[{"name": "Sakura", "han_viet": "Anh Đào"}])),
    )

    run(tmp_path, server, source, images_per_request=2)

    first, second = (system_prompt(body) for body in server.bodies)
    assert "use exactly these names" in first and "- Ryuu -> Long" in first and "Kenji" not in first
    assert "- Kenji -> Kiện Nhị" in second and "- Ryuu -> Long" in second
    raw = glossary.read_bytes().decode("utf-8")
    assert "Kiện Nhị" in raw
    saved = json.loads(raw)
    assert saved["names"] == {"Ryuu": "Long", "Kenji": "Kiện Nhị", "Sakura": "Anh Đào"}
    assert saved["note"] == "sửa tay"


def test_an_unreadable_glossary_is_neither_used_nor_overwritten(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    glossary = tmp_path / "series" / "glossary.json"
    glossary.parent.mkdir()
    glossary.write_text('{"names": {"Ryuu": "Long",}', encoding="utf-8")
    server = Server(
        completion(answer(per_panel(source["panels"]), glossary=[{"name": "A", "han_viet": "Á"}]))
    )

    result = run(tmp_path, server, source)

    assert result.script["writer"] == "openai"
    [warning] = result.warnings
    assert str(glossary) in warning and "neither used nor updated" in warning
    assert glossary.read_text(encoding="utf-8") == '{"names": {"Ryuu": "Long",}'


def test_a_server_error_is_retried_by_the_sdk(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    server = Server(
        httpx2.Response(500, json={"error": {"message": "overloaded"}}, headers={"retry-after-ms": "1"}),
        completion(answer(per_panel(source["panels"]))),
    )

    result = run(tmp_path, server, source, max_retries=1)

    assert len(server.bodies) == 2 and result.script["writer"] == "openai"


def test_a_server_error_after_the_retries_is_raised(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    server = Server(httpx2.Response(503, json={"error": {"message": "down"}}))

    with pytest.raises(openai.InternalServerError):
        run(tmp_path, server, source)
    assert not (tmp_path / "series").exists()


def test_a_refused_key_says_openai_api_key_is_wrong(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    refused = {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
    server = Server(httpx2.Response(401, json=refused))

    with pytest.raises(LLMAuthError, match="OPENAI_API_KEY") as caught:
        run(tmp_path, server, source, max_retries=2)

    assert "401" in str(caught.value) and KEY not in str(caught.value)
    assert caught.value.name == "LLMAuthError"
    assert len(server.bodies) == 1


def test_no_key_for_openai_itself_is_an_auth_error(tmp_path: Path, chapter) -> None:
    with pytest.raises(LLMAuthError, match="OPENAI_API_KEY"):
        write_script(
            LLMConfig(),
            panels_dir=tmp_path / "panels",
            source=chapter(1),
            glossary_path=tmp_path / "glossary.json",
            summary_path=tmp_path / "summaries.json",
            http_client=Server().client(),
        )


def test_a_local_server_needs_no_key(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    server = Server(completion(answer(per_panel(source["panels"]))))

    run(tmp_path, server, source, api_key=None)

    assert server.headers[0]["authorization"] == "Bearer not-needed"


def test_the_title_is_cut_to_100_characters(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    server = Server(completion(answer(per_panel(source["panels"]), title="Rồng " * 40)))

    title = run(tmp_path, server, source).script["title"]

    assert len(title) == 100 and title.endswith("…")


def test_an_answer_in_a_code_fence_is_accepted(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    server = Server(completion("```json\n" + answer(per_panel(source["panels"])) + "\n```"))

    assert run(tmp_path, server, source).script["writer"] == "openai"


def test_the_wire_schema_is_strict() -> None:
    schema = script_llm._response_format()["json_schema"]["schema"]

    def objects(node: Any) -> list[dict[str, Any]]:
        if isinstance(node, dict):
            found = [node] if node.get("type") == "object" else []
            return found + [o for value in node.values() for o in objects(value)]
        if isinstance(node, list):
            return [o for value in node for o in objects(value)]
        return []

    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert len(objects(schema)) == 3  # the answer, a glossary entry, a segment
    for node in objects(schema):
        assert node["additionalProperties"] is False
        assert set(node["required"]) == set(node["properties"])
    assert set(schema["properties"]) == {"title", "description", "tags", "summary", "glossary", "segments"}


def test_the_config_repr_hides_the_key() -> None:
    assert KEY not in repr(LLMConfig(api_key=KEY))


def test_a_legacy_httpx_client_is_accepted(tmp_path: Path, chapter) -> None:
    source = chapter(1)
    body = json.loads(completion(answer(per_panel(source["panels"]))).content)
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=body)))

    result = write_script(
        LLMConfig(api_key=KEY, base_url=BASE_URL, max_retries=0),
        panels_dir=tmp_path / "panels",
        source=source,
        glossary_path=tmp_path / "glossary.json",
        summary_path=tmp_path / "summaries.json",
        http_client=client,
    )

    assert result.script["writer"] == "openai"

"""Small stand-ins for the pipeline's remote services, as real HTTP servers on 127.0.0.1.

Each one is a ``ThreadingHTTPServer`` on port 0 serving from a background thread, so the
real clients (httpx, the OpenAI SDK, google-auth's requests, googleapiclient's httplib2)
talk real HTTP to it, in this process or in a worker subprocess. Every request is recorded
(:class:`Recorded`), and the answers keep the shapes the real services send:

- :class:`LoopbackMangaDex`: API v5 (``/manga``, ``/manga/{id}/feed``, ``/chapter/{id}``,
  ``/at-home/server/{id}``), a MangaDex@Home node under ``/node`` serving small PNGs,
  and the ``/report`` endpoint;
- :class:`LoopbackOpenAI`: ``POST /v1/chat/completions`` answering a narration JSON for
  exactly the panels the request names;
- :class:`LoopbackYouTube`: the OAuth token endpoint (``/token``) and the Data API's
  resumable upload (``/upload/youtube/v3/videos``) and ``thumbnails.set``.

Use them as context managers (or ``start()`` / ``stop()``); ``stop`` shuts the server
down, closes its socket and joins its thread.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

__all__ = [
    "LoopbackMangaDex",
    "LoopbackOpenAI",
    "LoopbackService",
    "LoopbackYouTube",
    "Recorded",
    "Reply",
    "chapter_data",
    "manga_data",
    "page_png",
]


@dataclass(frozen=True)
class Recorded:
    """One request as the server got it."""

    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode("utf-8"))

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """An answer: status, body, headers."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real services; every answer has a length
    service: LoopbackService  # set on the subclass each service makes

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=self._body(),
        )
        try:
            reply = self.service.record_and_handle(request)
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: say so to the client, loudly
            reply = Reply.json({"error": f"loopback service failed: {type(exc).__name__}: {exc}"}, 599)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def log_message(self, *args: Any) -> None:
        pass  # the recorded requests are the log


class LoopbackService:
    """A recording HTTP server on 127.0.0.1 (port 0) in a background thread."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ----------------------------------------------------------------------

    def start(self) -> LoopbackService:
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"service": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.name = f"loopback-{type(self).__name__}"
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server, self._thread = None, None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server's root, without a trailing slash: ``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    # -- requests ------------------------------------------------------------------------

    def record_and_handle(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
        return self.handle(request)

    def handle(self, request: Recorded) -> Reply:
        raise NotImplementedError

    def received(
        self, method: str | None = None, path: str | None = None, prefix: str = ""
    ) -> list[Recorded]:
        """The requests so far with that method, exact path or path prefix."""
        with self._lock:
            seen = list(self.requests)
        return [
            r
            for r in seen
            if (method is None or r.method == method)
            and (path is None or r.path == path)
            and r.path.startswith(prefix)
        ]


def _not_found(detail: str) -> Reply:
    return Reply.json({"error": {"code": 404, "message": detail}}, 404)


# --- MangaDex --------------------------------------------------------------------------------


def manga_data(manga_id: str, en: str, vi: str | None = None) -> dict[str, Any]:
    """A manga as ``GET /manga`` lists it (API v5)."""
    return {
        "id": manga_id,
        "type": "manga",
        "attributes": {
            "title": {"en": en},
            "altTitles": [{"ja": "ドラゴン"}, *([{"vi": vi}] if vi else [])],
            "description": {"en": "A boy and a dragon."},
            "originalLanguage": "ja",
            "status": "ongoing",
            "contentRating": "safe",
            "availableTranslatedLanguages": ["en", "vi"],
            "tags": [],
            "version": 3,
        },
        "relationships": [{"id": "0d5b5bd4-7d5e-4a3a-8f4e-0c1b2e3d4f5a", "type": "author"}],
    }


def chapter_data(
    chapter_id: str,
    number: str | None,
    *,
    manga_id: str,
    group_id: str,
    group: str,
    pages: int,
    language: str = "vi",
    external_url: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    """A chapter as ``/manga/{id}/feed`` returns it with ``includes[]=scanlation_group``."""
    return {
        "id": chapter_id,
        "type": "chapter",
        "attributes": {
            "volume": "1",
            "chapter": number,
            "title": title,
            "translatedLanguage": language,
            "externalUrl": external_url,
            "isUnavailable": False,
            "publishAt": "2024-05-01T10:00:00+00:00",
            "readableAt": "2024-05-01T10:00:00+00:00",
            "createdAt": "2024-05-01T10:00:00+00:00",
            "updatedAt": "2024-05-01T10:00:00+00:00",
            "pages": pages,
            "version": 1,
        },
        "relationships": [
            {
                "id": group_id,
                "type": "scanlation_group",
                "attributes": {"name": group, "altNames": [], "locked": True, "official": False},
            },
            {"id": manga_id, "type": "manga"},
            {"id": "f8cc4f8a-e596-4618-ab05-ef6572980bbf", "type": "user"},
        ],
    }


def page_png(name: str, size: tuple[int, int] = (400, 600)) -> bytes:
    """A small manga-like page: white, a frame, two panels with shapes, a speech bubble."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:6], 16)
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((8, 8, width - 9, height // 2 - 4), outline="black", width=4)
    draw.rectangle((8, height // 2 + 4, width - 9, height - 9), outline="black", width=4)
    shade = (seed % 160, (seed >> 8) % 160, (seed >> 16) % 160)
    draw.ellipse((60, 60, 60 + 120 + seed % 60, 200), fill=shade, outline="black", width=3)
    draw.polygon([(220, height - 60), (340, height - 60), (280, height // 2 + 60)], fill=shade)
    draw.ellipse((200, 40, 380, 130), fill="white", outline="black", width=3)
    draw.text((225, 75), name[:14], fill="black")
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def collection(data: list[dict[str, Any]], *, limit: int, offset: int, total: int) -> dict[str, Any]:
    return {
        "result": "ok",
        "response": "collection",
        "data": data,
        "limit": limit,
        "offset": offset,
        "total": total,
    }


def _mangadex_error(status: int, title: str, detail: str) -> Reply:
    error = {"id": str(uuid.uuid4()), "status": status, "title": title, "detail": detail, "context": None}
    return Reply.json({"result": "error", "errors": [error]}, status)


class LoopbackMangaDex(LoopbackService):
    """The MangaDex API v5, one MangaDex@Home node (``/node``) and the report endpoint.

    :param mangas: ``manga_data`` entries ``GET /manga`` knows.
    :param feeds: manga id -> its chapters (``chapter_data``), in chapter order. The feed
        filters by ``translatedLanguage[]`` only: an external chapter is listed whatever
        ``includeExternalUrl`` says (as a mirror may do), so the client's own skip is tested.
    :param files: chapter id -> the page file names ``/at-home/server`` hands out.
    """

    def __init__(
        self,
        mangas: list[dict[str, Any]],
        feeds: dict[str, list[dict[str, Any]]],
        files: dict[str, list[str]],
    ) -> None:
        super().__init__()
        self.mangas = mangas
        self.feeds = feeds
        self.files = files

    @staticmethod
    def chapter_hash(chapter_id: str) -> str:
        return hashlib.md5(chapter_id.encode()).hexdigest()

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received("POST", "/report")]

    def at_home_calls(self) -> list[str]:
        """The chapter ids ``/at-home/server`` was asked for, in order."""
        return [r.path.rsplit("/", 1)[1] for r in self.received("GET", prefix="/at-home/server/")]

    def handle(self, request: Recorded) -> Reply:
        path, method = request.path, request.method
        if method == "POST" and path == "/report":
            return Reply.json({"result": "ok"})
        if method != "GET":
            return _mangadex_error(405, "method_not_allowed", f"{method} {path}")
        if path == "/manga":
            return self._mangas(request)
        if match := re.fullmatch(r"/manga/([0-9a-f-]{36})/feed", path):
            return self._feed(request, match.group(1))
        if match := re.fullmatch(r"/manga/([0-9a-f-]{36})", path):
            found = [m for m in self.mangas if m["id"] == match.group(1)]
            if not found:
                return _mangadex_error(404, "not_found_http_exception", f"no manga {match.group(1)}")
            return Reply.json({"result": "ok", "response": "entity", "data": found[0]})
        if match := re.fullmatch(r"/chapter/([^/]+)", path):
            return self._chapter(match.group(1))
        if match := re.fullmatch(r"/at-home/server/([^/]+)", path):
            return self._at_home(match.group(1))
        if match := re.fullmatch(r"/node/(data|data-saver)/([0-9a-f]{32})/([^/]+)", path):
            return Reply(200, page_png(match.group(3)), {"Content-Type": "image/png", "X-Cache": "MISS"})
        return _mangadex_error(404, "not_found_http_exception", f"no route {path}")

    def _mangas(self, request: Recorded) -> Reply:
        data = self.mangas
        if ids := request.query.get("ids[]"):
            data = [m for m in self.mangas if m["id"] in ids]
        limit = int(request.param("limit") or 10)
        return Reply.json(collection(data[:limit], limit=limit, offset=0, total=len(data)))

    def _feed(self, request: Recorded, manga_id: str) -> Reply:
        chapters = self.feeds.get(manga_id, [])
        if languages := request.query.get("translatedLanguage[]"):
            chapters = [c for c in chapters if c["attributes"]["translatedLanguage"] in languages]
        limit, offset = int(request.param("limit") or 100), int(request.param("offset") or 0)
        page = chapters[offset : offset + limit]
        return Reply.json(collection(page, limit=limit, offset=offset, total=len(chapters)))

    def _chapter(self, chapter_id: str) -> Reply:
        for manga_id, chapters in self.feeds.items():
            for chapter in chapters:
                if chapter["id"] == chapter_id:
                    data = json.loads(json.dumps(chapter))
                    manga = next(m for m in self.mangas if m["id"] == manga_id)
                    for rel in data["relationships"]:
                        if rel["type"] == "manga":
                            rel["attributes"] = manga["attributes"]
                    return Reply.json({"result": "ok", "response": "entity", "data": data})
        return _mangadex_error(404, "not_found_http_exception", f"Chapter with ID {chapter_id} was not found")

    def _at_home(self, chapter_id: str) -> Reply:
        files = self.files.get(chapter_id)
        if files is None:
            return _mangadex_error(404, "not_found_http_exception", f"no chapter {chapter_id}")
        chapter = {"hash": self.chapter_hash(chapter_id), "data": files, "dataSaver": files}
        return Reply.json({"result": "ok", "baseUrl": f"{self.url}/node", "chapter": chapter})


# --- an OpenAI-compatible server -------------------------------------------------------------

PANEL_NAME = re.compile(r"panel-\d{3}\.(?:png|jpe?g|webp|gif)")


def _message_texts(messages: list[dict[str, Any]]) -> list[str]:
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if part.get("type") == "text")
    return texts


class LoopbackOpenAI(LoopbackService):
    """``POST /v1/chat/completions``: a narration JSON for the panels the user message names.

    The panels are read from the request's user messages (``panel-NNN.ext``, in reading order
    by name), so the answer covers exactly the panels asked for, one Vietnamese segment each.
    """

    TITLE = "Cậu bé rồng - Chương 1: Cuộc gặp gỡ định mệnh"

    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.received("POST", "/v1/chat/completions")]

    def handle(self, request: Recorded) -> Reply:
        if (request.method, request.path) != ("POST", "/v1/chat/completions"):
            return Reply.json(
                {"error": {"message": f"no route {request.path}", "type": "invalid_request"}}, 404
            )
        body = request.json()
        users = [m for m in body.get("messages", []) if m.get("role") == "user"]
        # panel-NNN names sort in reading order; a part note names some twice ("panels A to C")
        panels = sorted(set(PANEL_NAME.findall("\n".join(_message_texts(users)))))
        return Reply.json(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.answer(panels)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 420, "completion_tokens": 180, "total_tokens": 600},
            }
        )

    def answer(self, panels: list[str]) -> str:
        segments = [
            {"panels": [panel], "text": f"Cảnh thứ {index}: cậu bé Long tiến vào khu rừng cổ."}
            for index, panel in enumerate(panels, start=1)
        ]
        return json.dumps(
            {
                "title": self.TITLE,
                "description": "Một cậu bé tìm thấy con rồng trong rừng. Điều gì đang chờ cậu?",
                "tags": ["truyện tranh", "review truyện", "manga", "cậu bé rồng", "tóm tắt"],
                "summary": "Cậu bé Long gặp một con rồng nhỏ trong khu rừng cổ.",
                "glossary": [{"name": "Ryu", "han_viet": "Long"}],
                "segments": segments,
            },
            ensure_ascii=False,
        )


# --- YouTube: the OAuth token endpoint and the Data API's uploads ----------------------------


@dataclass
class UploadSession:
    """One resumable upload: its metadata and the bytes received so far."""

    session_id: str
    metadata: dict[str, Any]
    total: int
    content_type: str
    data: bytearray = field(default_factory=bytearray)


class LoopbackYouTube(LoopbackService):
    """Google's OAuth token endpoint and the YouTube Data API v3's uploads, on one server.

    :param quota_exceeded: answer every ``videos.insert`` initiation with 403 quotaExceeded.
    :param token_refused: answer the token endpoint with 400 invalid_grant.
    :param accept_per_put: keep at most this many bytes of each PUT (a real server may keep
        fewer than sent; the 308's Range tells the client where to go on).
    """

    VIDEO_ID = "vid123"
    ACCESS_TOKEN = "ya29.loopback-access-token"

    def __init__(
        self, *, quota_exceeded: bool = False, token_refused: bool = False, accept_per_put: int | None = None
    ) -> None:
        super().__init__()
        self.quota_exceeded = quota_exceeded
        self.token_refused = token_refused
        self.accept_per_put = accept_per_put
        self.sessions: dict[str, UploadSession] = {}

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    @property
    def api_url(self) -> str:
        """The Data API's root, as YOUTUBE_API_URL takes it (with the trailing slash)."""
        return f"{self.url}/"

    def token_requests(self) -> list[Recorded]:
        return self.received("POST", "/token")

    def initiations(self) -> list[Recorded]:
        return [r for r in self.received("POST", "/upload/youtube/v3/videos") if r.param("upload_id") is None]

    def chunks(self) -> list[Recorded]:
        return self.received("PUT", "/upload/youtube/v3/videos")

    def handle(self, request: Recorded) -> Reply:
        route = (request.method, request.path)
        if route == ("POST", "/token"):
            return self._token(request)
        if request.headers.get("authorization") != f"Bearer {self.ACCESS_TOKEN}":
            # as Google: only the access token this token endpoint issued is good
            return self._api_error(401, "authError", "Request had invalid authentication credentials.")
        if route == ("POST", "/upload/youtube/v3/videos"):
            return self._initiate(request)
        if route == ("PUT", "/upload/youtube/v3/videos"):
            return self._chunk(request)
        if route == ("POST", "/upload/youtube/v3/thumbnails/set"):
            url = f"https://i.ytimg.com/vi/{request.param('videoId')}/default.jpg"
            return Reply.json(
                {
                    "kind": "youtube#thumbnailSetResponse",
                    "etag": "loopback",
                    "items": [{"default": {"url": url, "width": 120, "height": 90}}],
                }
            )
        return self._api_error(404, "notFound", f"no route {request.method} {request.path}")

    @staticmethod
    def _api_error(status: int, reason: str, message: str, domain: str = "global") -> Reply:
        error = {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
        }
        return Reply.json({"error": error}, status)

    def _token(self, request: Recorded) -> Reply:
        if self.token_refused:
            return Reply.json(
                {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}, 400
            )
        return Reply.json(
            {
                "access_token": self.ACCESS_TOKEN,
                "expires_in": 3600,
                "scope": "https://www.googleapis.com/auth/youtube.upload",
                "token_type": "Bearer",
            }
        )

    def _initiate(self, request: Recorded) -> Reply:
        if request.param("uploadType") != "resumable":
            return self._api_error(400, "badRequest", "only resumable uploads here")
        if self.quota_exceeded:
            return self._api_error(
                403,
                "quotaExceeded",
                "The request cannot be completed because you have exceeded your quota.",
                domain="youtube.quota",
            )
        session_id = uuid.uuid4().hex
        self.sessions[session_id] = UploadSession(
            session_id=session_id,
            metadata=request.json(),
            total=int(request.headers.get("x-upload-content-length") or 0),
            content_type=request.headers.get("x-upload-content-type", ""),
        )
        location = f"{self.url}/upload/youtube/v3/videos?uploadType=resumable&upload_id={session_id}"
        return Reply(200, b"", {"Location": location, "X-GUploader-UploadID": session_id})

    def _chunk(self, request: Recorded) -> Reply:
        session = self.sessions.get(request.param("upload_id") or "")
        if session is None:
            return self._api_error(404, "notFound", "no such upload session")
        ranged = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", request.headers.get("content-range", ""))
        if ranged is None:
            return self._api_error(400, "badRequest", "a PUT needs Content-Range")
        if ranged.group(1) is not None:
            start = int(ranged.group(1))
            if start != len(session.data):
                return self._api_error(400, "badRequest", f"chunk at {start}, expected {len(session.data)}")
            body = request.body
            if self.accept_per_put is not None:
                body = body[: self.accept_per_put]
            session.data.extend(body)
        if len(session.data) >= session.total > 0:
            return Reply.json(self.video(session), 200)
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return Reply(308, b"", headers)

    def video(self, session: UploadSession) -> dict[str, Any]:
        """The video a finished session made: the first is VIDEO_ID, the next vid124, ..."""
        order = list(self.sessions).index(session.session_id)
        return {
            "kind": "youtube#video",
            "etag": "loopback-etag",
            "id": self.VIDEO_ID if order == 0 else f"vid{123 + order}",
            "snippet": {**session.metadata.get("snippet", {}), "channelId": "UC-loopback"},
            "status": {**session.metadata.get("status", {}), "uploadStatus": "uploaded"},
        }

    def uploaded(self) -> list[UploadSession]:
        """The sessions that received every byte."""
        return [s for s in self.sessions.values() if s.total and len(s.data) == s.total]

"""The YouTube publisher (UPLOAD_TARGET=youtube): a resumable upload with the Data API v3.

The upload session is kept in ``work/<job_id>/upload_session.json``, so a worker started
again after a crash goes on with the same upload; a spent quota is YouTubeQuotaError. The
refresh token comes from the file YOUTUBE_TOKEN_FILE names (0600), handed over by the
settings; the Google client loads only when this publisher is chosen. A Shorts cut
(SHORTS_CUT) is uploaded after the video, with ``#Shorts`` in its title and a link to
the video first in its description, from its own upload session.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from services.pipeline import publishing
from services.pipeline.workspace import Workspace

__all__ = ["YouTubePublisher"]


class YouTubePublisher:
    """A Publisher over ``youtube.upload_video`` for one account's channel."""

    name: ClassVar[str] = "youtube"

    def __init__(self, settings: Any, data_dir: Path) -> None:
        self.settings = settings

    @classmethod
    def describe(cls, settings: Any) -> str:
        when = f", published at {settings.youtube_publish_at} Vietnam time" if settings.youtube_publish_at else ""
        token = settings.youtube_token_file or "YOUTUBE_TOKEN_FILE not set"
        return f"youtube, {settings.youtube_privacy}{when}, token {token}"

    def publish(self, work: Workspace, now: datetime) -> dict[str, Any]:
        from services.pipeline.providers.upload import youtube  # the Google client loads only now

        settings = self.settings
        if settings.youtube_token_file is None:
            raise youtube.YouTubeAuthError(
                "UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE: run `python run_scheduler.py youtube-auth`"
            )
        script, source = work.read("script.json"), work.read("source.json")
        account = str(source.get("account_id") or "default")
        thumbnail = None
        if settings.youtube_thumbnail:
            chosen = publishing.striking_panel([work.panels / name for name in source["panels"]])
            thumbnail = publishing.make_thumbnail(chosen, work.root / "thumbnail.jpg", script["title"])
        upload = youtube.UploadSettings(
            privacy=settings.youtube_privacy,
            category_id=settings.youtube_category_id,
            publish_at=publishing.publish_time(settings.youtube_publish_at, now),
            synthetic_media=True,
            thumbnail=thumbnail,
        )
        credentials = youtube.load_credentials(settings.youtube_token_file, account=account)

        def send(video: Path, title: str, description: str, how: Any, session: str) -> str:
            """Upload one file resumably (its own session file); its watch URL."""
            body = youtube.video_body(title, description, script.get("tags", []), how)
            video_id = youtube.upload_video(
                video, body, how, session_file=work.root / session, credentials=credentials,
                job_id=work.job_id, account=account, api_url=settings.youtube_api_url,
            )
            return youtube.video_url(video_id)

        url = send(work.video, script["title"], publishing.describe(script, source), upload, "upload_session.json")
        answer = {"job_id": work.job_id, "youtube_url": url, "status": "completed"}
        if work.shorts.exists():  # after the video, so its description links to it
            answer["shorts_url"] = send(
                work.shorts,
                publishing.shorts_title(script["title"]),
                publishing.describe_shorts(url, script, source),
                dataclasses.replace(upload, thumbnail=None),
                "upload_session_shorts.json",
            )
        return answer

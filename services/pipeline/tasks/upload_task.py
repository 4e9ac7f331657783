"""The worker's ``upload`` task: publish a job's rendered video where its account says.

By the settings of the video's account (``UPLOAD_TARGET``): the embedded publisher
(``providers/upload/local_publisher.py``) copies the video and a metadata JSON to
``DATA_DIR/published/YYYY-MM-DD/`` (Vietnam date); ``youtube`` uploads it with the YouTube
Data API (``providers/upload/youtube.py``), resumably: the upload session is kept in
``work/<job_id>/upload_session.json``, so a worker started again after a crash goes on
with the same upload. A spent YouTube quota is reported as YouTubeQuotaError.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.pipeline import publishing
from services.pipeline.providers.upload.local_publisher import publish_local
from services.pipeline.settings import PipelineSettings
from services.pipeline.workspace import Workspace

__all__ = ["publish", "publish_youtube"]


def publish(work: Workspace, settings: PipelineSettings, now: datetime) -> dict[str, Any]:
    """Publish the job's video where its account's settings say; return the worker's output."""
    if not work.video.exists():
        raise FileNotFoundError(f"no rendered video for {work.job_id}: {work.video}")
    source = work.read("source.json")
    settings = settings.for_account(str(source.get("account_id") or "default"))
    if settings.upload_target == "youtube":
        return publish_youtube(work, settings, now)
    return publish_local(work, now)


def publish_youtube(work: Workspace, settings: PipelineSettings, now: datetime) -> dict[str, Any]:
    """Upload the job's video to YouTube; the output carries its watch URL."""
    from services.pipeline.providers.upload import youtube  # the Google client loads only when it uploads

    if settings.youtube_token_file is None:
        raise youtube.YouTubeAuthError(
            "UPLOAD_TARGET=youtube needs YOUTUBE_TOKEN_FILE: run `python run_scheduler.py youtube-auth`"
        )
    script, source = work.read("script.json"), work.read("source.json")
    account = str(source.get("account_id") or "default")
    thumbnail = None
    if settings.youtube_thumbnail:
        first = work.panels / source["panels"][0]
        thumbnail = publishing.make_thumbnail(first, work.root / "thumbnail.jpg")
    upload = youtube.UploadSettings(
        privacy=settings.youtube_privacy,
        category_id=settings.youtube_category_id,
        publish_at=publishing.publish_time(settings.youtube_publish_at, now),
        synthetic_media=True,
        thumbnail=thumbnail,
    )
    body = youtube.video_body(
        script["title"], publishing.describe(script, source), script.get("tags", []), upload
    )
    video_id = youtube.upload_video(
        work.video,
        body,
        upload,
        session_file=work.root / "upload_session.json",
        credentials=youtube.load_credentials(settings.youtube_token_file, account=account),
        job_id=work.job_id,
        account=account,
        api_url=settings.youtube_api_url,
    )
    return {"job_id": work.job_id, "youtube_url": youtube.video_url(video_id), "status": "completed"}

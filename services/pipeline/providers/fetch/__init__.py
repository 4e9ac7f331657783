"""Fetch sources: where a chapter's pages come from (a local folder, MangaDex)."""

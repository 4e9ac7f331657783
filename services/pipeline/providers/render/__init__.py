"""Renderers: panels and narration into an MP4."""

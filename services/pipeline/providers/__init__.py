"""Backends of the pipeline's stages, each behind a small interface, with embedded defaults
that need no keys and no network (the sample chapter, template narration, a local voice or
tone, the bundled ffmpeg, a local publish folder)."""

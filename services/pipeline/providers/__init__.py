"""Backends of the pipeline's stages, one folder per kind of outside thing (fetch, script,
tts, render, upload), with embedded defaults that need no keys and no network (the sample
chapter, template narration, a local voice or tone, the bundled ffmpeg, a local publish
folder). A provider imports nothing of the pipeline above it but the error names and the
settings it is handed; ``fonts.py`` and ``retry_policy.py`` are shared by the kinds."""

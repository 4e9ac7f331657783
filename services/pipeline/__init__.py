"""The manga → narrated Vietnamese video pipeline, built on ``services.scheduler``.

``definition`` reads the state machine's numbers from ``config/pipeline.json``;
``policy`` holds its pure decisions (retry or catch, delays, next state).
"""

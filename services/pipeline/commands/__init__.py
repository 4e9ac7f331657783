"""The CLI commands the pipeline adds to ``run_scheduler.py``, one module each.

``quota``, ``daily``, ``doctor``, ``youtube_auth`` and ``demo`` each hold one command's
body, ``(args, settings) -> exit code``; ``services.pipeline.extension`` builds their
parsers and wires each one to its body.
"""

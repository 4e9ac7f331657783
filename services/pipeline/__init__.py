"""The manga → narrated Vietnamese video pipeline, built on ``services.scheduler``.

``engine/`` is a generic state machine (Amazon States Language's Task, Choice, Succeed,
Retry, Catch, TimeoutSeconds, HeartbeatSeconds) that reads ``config/pipeline.json``;
``stages/`` holds one function per seed Lambda; ``tasks/`` the worker handshake;
``jobs/`` the scheduler job kinds; ``providers/<kind>/`` the backends of each outside
thing. ``docs/architecture.md`` has the map. The dependencies point one way: jobs ->
engine, stages -> providers; the pipeline imports ``services.scheduler``, never the reverse.
"""

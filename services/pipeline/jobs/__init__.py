"""The scheduler job kinds of the pipeline: pipeline.video and pipeline.daily."""

"""Services of the video scheduler: the generic scheduler core and, later, the pipeline."""

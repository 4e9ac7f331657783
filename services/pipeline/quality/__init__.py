"""The gate a video passes before it may be published: what it measures, what it allows.

``measure.measure`` reads a file's figures (codecs, faststart, how the tracks end,
keyframes, loudness and true peak, the cuts, black and frozen stretches, the subtitle's
glyphs); ``gate.judge`` holds them to the limits and says, one line each, what fails.
``run_scheduler.py check FILE.mp4`` runs both on any file.
"""

from services.pipeline.quality.gate import LIMITS, Failure, judge
from services.pipeline.quality.measure import Figures, measure

__all__ = ["LIMITS", "Failure", "Figures", "judge", "measure"]

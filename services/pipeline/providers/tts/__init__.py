"""Speech engines: narration audio (espeak-ng or a tone, edge-tts)."""

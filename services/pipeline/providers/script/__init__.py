"""Script writers: a chapter's Vietnamese narration (a template, an OpenAI-compatible LLM)."""

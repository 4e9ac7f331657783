"""Publishers: where a rendered video goes (YouTube)."""

"""The generic state machine (Task, Choice, Succeed, Retry, Catch, TimeoutSeconds, HeartbeatSeconds), its definition and the stage context."""

"""The task-token handshake between the machine and a worker, its transports, and the worker's entry point."""

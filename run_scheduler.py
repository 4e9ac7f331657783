#!/usr/bin/env python3
"""Command-line entry point of the scheduler: see ``run_scheduler.py --help``."""

import sys

from services.scheduler.cli import main

if __name__ == "__main__":
    sys.exit(main())

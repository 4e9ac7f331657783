#!/usr/bin/env python3
"""Command-line entry point: the scheduler with the video pipeline (see ``--help``)."""

import sys

from services.pipeline.cli_entry import main

if __name__ == "__main__":
    sys.exit(main())

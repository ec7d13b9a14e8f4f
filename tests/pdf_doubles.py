"""Test doubles for PDF worker targets (imported by worker processes through PYTHONPATH)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def sleepy_render(job):
    """Writes its pid to the file named by job.html, then never finishes."""
    Path(job.html).write_text(str(os.getpid()))
    time.sleep(3600)


def greedy_render(job):
    """Asks for far more memory than the worker's limit allows."""
    block = bytearray(1536 * 1024 * 1024)
    return len(block)

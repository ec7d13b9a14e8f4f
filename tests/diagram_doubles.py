"""Renderer test doubles for tests/test_diagrams.py (a module, so spawned workers can unpickle them)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from generator.services.diagrams import EmbeddedRenderer


@dataclass(frozen=True)
class CannedRenderer:
    """Returns the same SVG for every diagram, as a hostile or broken renderer might."""

    svg: str
    name: str = "canned"

    def version(self) -> str:
        return "1"

    def check(self) -> str | None:
        return None

    def warm(self) -> None:
        pass

    def render(self, source: str, theme: str, timeout: float) -> str:
        return self.svg


@dataclass(frozen=True)
class HangingRenderer(EmbeddedRenderer):
    """Hangs on sources containing HANG; renders the rest for real."""

    name: str = "hanging"

    def render(self, source: str, theme: str, timeout: float) -> str:
        if "HANG" in source:
            time.sleep(3600)
        return super().render(source, theme, timeout)


@dataclass(frozen=True)
class CrashingRenderer(EmbeddedRenderer):
    """Exits the worker process with code 3 on sources containing CRASH."""

    name: str = "crashing"

    def render(self, source: str, theme: str, timeout: float) -> str:
        if "CRASH" in source:
            os._exit(3)
        return super().render(source, theme, timeout)


@dataclass(frozen=True)
class MustNotRender(EmbeddedRenderer):
    """Same name and version as the real renderer (so the same cache keys), but never renders."""

    def warm(self) -> None:
        pass

    def render(self, source: str, theme: str, timeout: float) -> str:
        raise AssertionError("a cached diagram was rendered again")

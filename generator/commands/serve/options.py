"""What `sitegen serve` was asked for, and the outcome of each preview build."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...diagnostics import Diagnostic, Diagnostics


@dataclass
class ServeOptions:
    """What `sitegen serve` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8000
    strict: bool = False
    jobs: int | None = None
    watch: bool = True
    step_ms: int = 30
    """Quiet time after a change before the rebuild starts (editors write files in several steps)."""
    untrusted: bool = False
    """Preview a change you do not trust: sandboxed templates, no shipped caches (config `untrusted`)."""


@dataclass
class BuildStatus:
    """The outcome of the latest preview build, as the overlay and the terminal show it."""

    generation: int = 0
    ok: bool = True
    diagnostics: list[Diagnostic] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU time of the build itself (on a busy machine `seconds` includes waiting for a core)."""
    rendered: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        found = Diagnostics(self.diagnostics)
        return {
            "generation": self.generation,
            "ok": self.ok,
            "message": self.message,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "rendered": self.rendered,
            "errors": [d.format() for d in found.errors],
            "warnings": [d.format() for d in found.warnings],
        }

"""Locations, diagnostics and the error classes the CLI prints without a traceback."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Location:
    """A place in a source file; line and col are 1-based."""

    path: str
    line: int | None = None
    col: int | None = None

    def __str__(self) -> str:
        out = self.path
        if self.line is not None:
            out += f":{self.line}"
            if self.col is not None:
                out += f":{self.col}"
        return out


@dataclass(frozen=True)
class Diagnostic:
    """One finding: `path:line:col: level[code]: message`."""

    level: Level
    code: str
    message: str
    location: Location | None = None

    def format(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.level}[{self.code}]: {self.message}"

    def to_json(self) -> dict:
        loc = self.location
        return {
            "level": self.level,
            "code": self.code,
            "message": self.message,
            "path": loc.path if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
        }


@dataclass
class Diagnostics:
    """A collector: stages add to it and carry on, so every problem is listed at once."""

    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, location: Location | None = None) -> None:
        self.items.append(Diagnostic("error", code, message, location))

    def warning(self, code: str, message: str, location: Location | None = None) -> None:
        self.items.append(Diagnostic("warning", code, message, location))

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        self.items.extend(diags)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.level == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.level == "warning"]

    def failed(self, strict: bool = False) -> bool:
        """True when the build must not publish: errors, or any warning under --strict."""
        return bool(self.errors) or (strict and bool(self.warnings))

    def sorted(self) -> list[Diagnostic]:
        """Unique diagnostics in a stable order: by file, line, column."""
        seen: set[Diagnostic] = set()
        unique = []
        for d in self.items:
            if d not in seen:
                seen.add(d)
                unique.append(d)
        return sorted(
            unique,
            key=lambda d: (
                d.location.path if d.location else "",
                (d.location.line or 0) if d.location else 0,
                (d.location.col or 0) if d.location else 0,
            ),
        )


class SitegenError(Exception):
    """An expected failure caused by the user's input: printed plainly, exit code 1."""

    exit_code = 1

    def __init__(self, message: str = "", diagnostics: Iterable[Diagnostic] = ()):
        super().__init__(message)
        self.message = message
        self.diagnostics = list(diagnostics)


class ContentError(SitegenError):
    """Content or config is wrong (exit 1)."""


class EnvironmentProblem(SitegenError):
    """Usage or environment problem: a missing tool, a locked output, a bad path (exit 2)."""

    exit_code = 2

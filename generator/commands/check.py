"""`sitegen check`: the same build, nothing written; its findings as text or JSON.

Every page is rendered (even when the build would fail) and passes the build's findings stage
(`generator/findings.py`): a check and a build of one project report the same things.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..build import BuildOptions, check_site, collect_site_statics, load_site, render_site, untrusted_override
from ..diagnostics import ContentError, Diagnostic, Diagnostics


@dataclass
class CheckOptions:
    strict: bool = False
    """Warnings count as errors (exit 1)."""
    untrusted: bool = False
    """Check a change you do not trust: sandboxed templates, no shipped caches (config `untrusted`)."""


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    files: int = 0
    """Content files checked."""
    pages: int = 0
    """Rendered pages whose links were checked."""
    strict: bool = False

    @property
    def errors(self) -> list[Diagnostic]:
        return Diagnostics(self.diagnostics).errors

    @property
    def warnings(self) -> list[Diagnostic]:
        return Diagnostics(self.diagnostics).warnings

    @property
    def exit_code(self) -> int:
        return 1 if Diagnostics(self.diagnostics).failed(self.strict) else 0

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "pages": self.pages,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "diagnostics": [d.to_json() for d in self.diagnostics],
        }


def check(project: Path, options: CheckOptions | None = None) -> CheckResult:
    """Run the build without writing, then every content check; findings sorted by file and line."""
    options = options or CheckOptions()
    project = project.resolve()
    result = CheckResult(strict=options.strict)
    try:
        loaded = load_site(project, BuildOptions(strict=options.strict, pdf=False, overrides=untrusted_override(options.untrusted)))
    except ContentError as exc:
        # Only configuration errors stop a build that writes nothing: nothing else can be checked.
        result.diagnostics = _unique(exc.diagnostics)
        return result
    # Every finding and every page, even when the build would fail: nothing is written.
    files = render_site(loaded, loaded.site.pages)[0]
    statics = collect_site_statics(loaded)  # and what the build would say of the project's SVG files
    check_site(loaded, files, set(statics))
    result.files = len(loaded.content.sources)
    result.pages = len(files)
    result.diagnostics = _unique(loaded.diagnostics.items)
    return result


def _unique(diags: list[Diagnostic]) -> list[Diagnostic]:
    """The collector's order (unique; by file, line, column), with the code breaking ties at one place."""

    def place_and_code(d: Diagnostic) -> tuple[str, int, int, str]:
        loc = d.location
        return (loc.path, loc.line or 0, loc.col or 0, d.code) if loc else ("", 0, 0, d.code)

    return sorted(Diagnostics(list(diags)).sorted(), key=place_and_code)

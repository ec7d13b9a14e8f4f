"""`sitegen doctor`: what this machine can build, and for each problem the command that fixes it.

Nothing here changes the machine or touches the network: versions come from installed package
metadata, fonts from fontconfig, models from the local Hugging Face cache.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from .. import __version__

Status = Literal["ok", "warning", "error", "info"]

KEY_PACKAGES = [
    ("click", "the command line"),
    ("jinja2", "templates"),
    ("markdown-it-py", "Markdown"),
    ("mdit-py-plugins", "Markdown extensions"),
    ("pydantic", "config and content schemas"),
    ("pyyaml", "YAML"),
    ("pygments", "code highlighting"),
    ("mermaid-render", "diagrams (embedded renderer)"),
    ("mermaid-py", "profile diagrams"),
    ("latex2mathml", "formulas (MathML)"),
    ("ziamath", "formulas (SVG)"),
    ("weasyprint", "PDFs"),
    ("fonttools", "PDF font subsets"),
    ("pillow", "images"),
    ("torch", "drafts"),
    ("transformers", "drafts"),
    ("tokenizers", "drafts"),
    ("safetensors", "drafts"),
    ("rich", "progress bars"),
    ("watchfiles", "sitegen serve"),
    ("pagefind", "search index"),
]
"""Distributions sitegen depends on, with what each one is for."""


@dataclass
class Finding:
    """One line of the report: what was checked, what was found, and how to fix it."""

    name: str
    status: Status
    detail: str
    fix: str | None = None

    def format(self) -> str:
        mark = {"ok": "ok     ", "warning": "WARNING", "error": "ERROR  ", "info": "info   "}[self.status]
        line = f"{mark} {self.name}: {self.detail}"
        return line + (f"\n        fix: {self.fix}" if self.fix else "")

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class DoctorReport:
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.status in ("warning", "error")]

    @property
    def exit_code(self) -> int:
        """1 when something sitegen needs is missing; warnings (optional parts) keep 0."""
        return 1 if any(f.status == "error" for f in self.findings) else 0


def _pip(package: str) -> str:
    return f"{Path(sys.executable).name} -m pip install '{package}'"


# --- the checks ------------------------------------------------------------------------------


def check_versions() -> list[Finding]:
    found = [
        Finding("sitegen", "ok", f"{__version__} (Python {platform.python_version()}, {sys.executable})"),
    ]
    for dist, purpose in KEY_PACKAGES:
        try:
            found.append(Finding(dist, "ok", f"{importlib.metadata.version(dist)} ({purpose})"))
        except importlib.metadata.PackageNotFoundError:
            found.append(Finding(dist, "error", f"not installed (needed for {purpose})", _pip(dist)))
    return found


def check_cjk_font(run: Callable[[list[str]], str | None]) -> Finding:
    """A Chinese font fontconfig knows: PDFs (and diagrams) need one, or Chinese prints as boxes."""
    if shutil.which("fc-list") is None:
        return Finding("CJK font", "error", "fontconfig (fc-list) is not installed, so no font can be found",
                       "sudo apt-get install fontconfig fonts-noto-cjk")
    out = run(["fc-list", ":lang=zh", "family"]) or ""
    families = sorted({line.split(",")[0].strip() for line in out.splitlines() if line.strip()})
    if not families:
        return Finding("CJK font", "error", "no font covering Chinese is installed (PDFs would show boxes)",
                       "sudo apt-get install fonts-noto-cjk   # then: fc-cache -f")
    shown = ", ".join(families[:3]) + (f" (+{len(families) - 3} more)" if len(families) > 3 else "")
    return Finding("CJK font", "ok", shown)


def check_pango() -> Finding:
    """WeasyPrint draws text with Pango (a C library from the system, not from pip)."""
    missing = [lib for lib in ("pango-1.0", "pangoft2-1.0") if ctypes.util.find_library(lib) is None]
    if missing:
        return Finding("Pango", "error", f"system library not found: {', '.join(missing)} (PDFs cannot be built)",
                       "sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0")
    try:
        out = subprocess.run([sys.executable, "-c", "import weasyprint, sys; sys.stdout.write(weasyprint.__version__)"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        return Finding("Pango", "error", f"cannot start Python to load WeasyPrint: {exc}")
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        return Finding("Pango", "error", f"WeasyPrint does not load: {last}",
                       "sudo apt-get install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libffi-dev")
    return Finding("Pango", "ok", f"found; WeasyPrint {out.stdout.strip()} loads")


def check_diagram_renderer(renderer_name: str) -> Finding:
    """The configured Mermaid renderer can be imported (nothing is rendered here)."""
    from ..config import DiagramsConfig
    from ..services.diagrams import select_renderer

    renderer = select_renderer(DiagramsConfig(renderer=renderer_name))  # type: ignore[arg-type]
    problem = renderer.check()
    if problem:
        fix = _pip("mermaid-render") if renderer_name == "embedded" else "export MERMAID_INK_SERVER=http://localhost:3000"
        return Finding("diagram renderer", "error", problem, fix)
    return Finding("diagram renderer", "ok", f"{renderer_name}: {renderer.version()}")


def check_draft_model(model: str, project: Path, allow_pickle: bool) -> Finding:
    """The draft model is on disk (a folder, or the Hugging Face cache); never downloads."""
    from ..diagnostics import SitegenError
    from ..services import drafts

    local = Path(model).expanduser()
    if not local.is_absolute():
        local = project / local
    fix_download = (f"sitegen draft   # with network access: downloads '{model}' (safetensors only) into the Hugging Face cache; "
                    "or set draft.model in sitegen.yaml to a folder saved with save_pretrained")
    try:
        if local.is_dir():
            weights = drafts.collect_weights(local, model, allow_pickle)
            return Finding("draft model", "ok", f"{model}: folder {local} ({', '.join(w.name for w in weights)})")
        snapshot = drafts._cached_snapshot(model, allow_pickle) if not drafts._looks_like_path(model) else None
    except SitegenError as exc:
        return Finding("draft model", "warning", exc.message, fix_download)
    if snapshot is None or not (snapshot / "config.json").is_file():
        return Finding("draft model", "warning", f"{model}: not in the Hugging Face cache ({drafts.hub_cache_dir()}); "
                       "drafting needs it, building does not", fix_download)
    try:
        weights = drafts.collect_weights(snapshot, model, allow_pickle)
    except SitegenError as exc:
        return Finding("draft model", "warning", exc.message, fix_download)
    return Finding("draft model", "ok", f"{model}: cached at {snapshot} ({', '.join(w.name for w in weights)})")


def check_pagefind(search_enabled: bool) -> Finding:
    from ..writers.search import find_pagefind

    binary, extended = find_pagefind()
    status: Status = "error" if search_enabled else "warning"
    if binary is None:
        return Finding("pagefind", status, "binary not found (the search index cannot be built)", _pip("pagefind[extended]"))
    if not extended:
        return Finding("pagefind", "warning", f"{binary} is not the extended build: Chinese is indexed without word segmentation",
                       _pip("pagefind[extended]"))
    return Finding("pagefind", "ok", f"{binary} (extended)")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.isfile("/usr/bin/chromium") else None


def check_chromium(run: Callable[[list[str]], str | None]) -> Finding:
    """Only the browser tests use it (real-browser checks of the built site); builds never do."""
    found = find_chromium()
    if found is None:
        return Finding("chromium", "warning", "not found (needed only for the browser tests)", "sudo apt-get install chromium")
    version = (run([found, "--version"]) or "").strip()
    return Finding("chromium", "ok", f"{found}" + (f" ({version})" if version else ""))


def folder_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def check_cache(cache_root: Path, limit: int = 2 * 1024**3) -> Finding:
    """Size of each cache namespace; the whole folder is always safe to delete."""
    if not cache_root.is_dir():
        return Finding("cache", "info", f"{cache_root} does not exist yet (it is created by the first build)")
    sizes = {p.name: folder_size(p) for p in sorted(cache_root.iterdir()) if p.is_dir()}
    total = sum(sizes.values())
    parts = ", ".join(f"{name} {_human(size)}" for name, size in sizes.items() if size)
    detail = f"{cache_root}: {_human(total)}" + (f" ({parts})" if parts else "")
    if total > limit:
        return Finding("cache", "warning", detail + " — larger than 2 GiB", f"rm -rf {cache_root}   # safe: it is rebuilt as needed")
    return Finding("cache", "ok", detail)


def _run(cmd: list[str]) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def doctor(project: Path, run: Callable[[list[str]], str | None] = _run) -> DoctorReport:
    """Every check, in the order a new user meets the features."""
    from ..config import load_config

    project = project.resolve()
    report = DoctorReport()
    report.findings += check_versions()
    config, problems = load_config(project) if (project / "sitegen.yaml").is_file() else (None, [])
    if config is None:
        detail = "; ".join(d.format() for d in problems) or f"no sitegen.yaml in {project} (checks use the defaults)"
        report.findings.append(Finding("config", "warning" if not problems else "error", detail,
                                       "sitegen init DIR   # or pass -C DIR" if not problems else None))
    from ..config import SiteConfig

    cfg = config or SiteConfig.model_construct()
    report.findings.append(check_cjk_font(run))
    report.findings.append(check_pango())
    report.findings.append(check_diagram_renderer(cfg.diagrams.renderer if config else "embedded"))
    report.findings.append(check_draft_model(cfg.draft.model if config else "gpt2", project,
                                             cfg.draft.allow_pickle if config else False))
    report.findings.append(check_pagefind(cfg.search.enabled if config else True))
    report.findings.append(check_chromium(run))
    report.findings.append(check_cache(project / (cfg.cache_dir if config else ".sitegen-cache")))
    return report

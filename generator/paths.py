"""The content rules every input tree follows: which names are never published, and links that leave a root.

One list for the content loader, the static copy, template loading, the PDF fetcher, publish and
serve, so a file one of them refuses is never let through by another.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .diagnostics import Diagnostic, Location

SECRET_NAMES = re.compile(
    r"^(id_[a-z0-9_]+|.*\.(pem|key|p12|pfx|kdbx|jks|keystore|ppk)|\.env.*|.*\.secret)$", re.I
)
"""Key files and secret stores: never copied, fetched into a PDF, published or served."""


def is_private_name(name: str) -> bool:
    """A hidden (dot) or secret-named file."""
    return name.startswith(".") or bool(SECRET_NAMES.match(name))


def private_part(rel: str) -> str | None:
    """The hidden folder, or the hidden or secret-named file, of a relative path; None when there is none."""
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".", "..")]
    for i, part in enumerate(parts):
        if part.startswith(".") or (i == len(parts) - 1 and SECRET_NAMES.match(part)):
            return part
    return None


def inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def symlink_problem(link: Path, project: Path) -> Diagnostic:
    """The error for a link that leaves the project: `rel: error[symlink]: … rel -> target`."""
    try:
        rel = link.relative_to(project).as_posix()
    except ValueError:
        rel = link.as_posix()
    return Diagnostic("error", "symlink", f"symlink leads outside the project: {rel} -> {os.readlink(link)}", Location(rel))


def link_leaving(path: Path, project: Path) -> Path | None:
    """The first symlink on the way from the project down to `path` that leads outside the project."""
    real_project = project.resolve()
    try:
        parts = path.relative_to(project).parts
    except ValueError:
        return None
    here = project
    for part in parts:
        here = here / part
        if here.is_symlink() and not inside(here.resolve(), real_project):
            return here
    return None


def collect_tree(base: Path, project: Path, diags: list[Diagnostic] | None = None) -> list[Path]:
    """Regular files under `base`, sorted; links out of the project and private names are left out (and reported)."""
    found: list[Path] = []
    if not base.is_dir():
        return found
    real_project = project.resolve()

    def note(diag: Diagnostic) -> None:
        if diags is not None and diag not in diags:
            diags.append(diag)

    def rel_of(p: Path) -> str:
        try:
            return p.relative_to(project).as_posix()
        except ValueError:
            return p.as_posix()

    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = here / name
            is_dir = name in dirnames
            if name.startswith(".") if is_dir else is_private_name(name):
                kind = "folder" if is_dir else "file"
                note(Diagnostic("warning", "hidden", f"ignored hidden or secret {kind} (never published)", Location(rel_of(p))))
                continue
            if p.is_symlink():
                real = p.resolve()
                if not inside(real, real_project):
                    note(symlink_problem(p, project))
                    continue
                hidden = private_part(real.relative_to(real_project).as_posix())
                if hidden:
                    note(Diagnostic("warning", "hidden", f"ignored link to a hidden or secret file: {rel_of(p)} -> {os.readlink(p)}", Location(rel_of(p))))
                    continue
                if is_dir:
                    continue  # a folder linked inside the project is walked where it really is
            if not is_dir and p.is_file():
                found.append(p)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not (here / d).is_symlink())
    return sorted(found)

"""Full-text search: runs Pagefind over the written HTML and adds its bundle to the output.

Pagefind reads the pages in the output being built (the transaction's folder), writes its bundle
into a scratch folder, and the files go into the output through the transaction like any other
file, so the manifest lists them and unchanged index chunks keep their old inode. The bundle sits
in `pagefind/` beside the pages and the search page loads it by a relative URL: the search works
offline, under a sub-path, and on any static host.

Reports and profiles carry `data-pagefind-body`, so only they are indexed; filters (type,
language, sector, tag) and meta come from `data-pagefind-*` attributes in the templates.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Protocol

from ..diagnostics import Diagnostics, EnvironmentProblem
from ..pages import Site

BUNDLE_DIR = "pagefind"
"""Folder of the search bundle inside the output (the search page loads `../pagefind/pagefind.js`)."""
RECORD = f"{BUNDLE_DIR}/sitegen-search.json"
"""What the bundle was built from (a key over the indexed HTML), so an unchanged site reuses it."""
RECORD_VERSION = "1"
"""Bump when the way sitegen runs Pagefind changes."""
MISSING = "search skipped: pagefind not installed (pip install 'pagefind[extended]')"
TIME_LIMIT = 600.0
"""Seconds Pagefind may take; a hung indexer must not hang the build."""
INDEXED_KINDS = ("report", "startup")
"""Page kinds whose templates mark their text with `data-pagefind-body`."""


class Sink(Protocol):
    """The build's output writer: an OutputTransaction (folder `tmp`) or serve's PreviewOutput (`out`)."""

    hashes: dict[str, str]
    out: Path

    def write(self, rel: str, data: bytes) -> None: ...


def find_pagefind() -> tuple[Path | None, bool]:
    """The Pagefind binary and whether it is the extended build (which segments Chinese)."""
    for module, extended in (("pagefind_bin_extended", True), ("pagefind_bin", False)):
        try:
            found = __import__(module).get_executable()
        except (ImportError, FileNotFoundError, AttributeError):
            continue
        if found and Path(found).is_file():
            return Path(found), extended
    for name, extended in (("pagefind_extended", True), ("pagefind", False)):
        found = shutil.which(name)
        if found:
            return Path(found), extended
    return None, False


def resolve_index_language(site: Site) -> str:
    """The language of the one index for all pages, so one search box finds every language."""
    # Pagefind would build an index per `<html lang>` and search only the search page's own.
    # Chinese needs word segmentation and English does not, so a site with any Chinese page is
    # indexed as Chinese (English words are still split at spaces; only stemming is lost).
    wanted = site.config.search.language
    if wanted != "auto":
        return wanted
    langs = {p.lang for p in site.pages if p.kind in INDEXED_KINDS} or {site.config.language}
    return "zh-cn" if "zh" in langs else "en"


def pagefind_command(binary: Path, site_dir: Path, bundle_dir: Path, language: str) -> list[str]:
    """The Pagefind invocation: pages in `site_dir`, bundle into `bundle_dir`."""
    return [
        str(binary),
        "--site", str(site_dir),
        "--output-path", str(bundle_dir),
        "--force-language", language,
        # Result URLs end in index.html like every other link of the site (file://, plain hosts).
        "--keep-index-url",
        "--quiet",
    ]


def write_search_index(site: Site, tx: Sink, diags: Diagnostics) -> int:
    """Index the pages written so far and add the bundle to the output; returns the bundle's file count."""
    binary, extended = find_pagefind()
    if binary is None:
        diags.warning("search", MISSING)
        return 0
    if not extended and any(p.lang == "zh" for p in site.pages if p.kind in INDEXED_KINDS):
        diags.warning("search", "pagefind is not the extended build: Chinese text is indexed without word segmentation (pip install 'pagefind[extended]')")
    language = resolve_index_language(site)
    key = search_key(binary, language, tx.hashes)
    kept = keep_previous_bundle(tx, key)
    if kept is not None:
        return kept
    site_dir = Path(getattr(tx, "tmp", None) or tx.out)
    # serve's preview writes in place: the old bundle must not be indexed, and stale chunks must go.
    stale = site_dir / BUNDLE_DIR
    if stale.is_dir() and not stale.is_symlink():
        shutil.rmtree(stale)
    with tempfile.TemporaryDirectory(prefix="sitegen-pagefind-") as scratch:
        bundle = Path(scratch) / BUNDLE_DIR
        try:
            proc = subprocess.run(pagefind_command(binary, site_dir, bundle, language), cwd=scratch, capture_output=True,
                                  text=True, timeout=TIME_LIMIT, stdin=subprocess.DEVNULL, env=_quiet_env())
        except FileNotFoundError:
            diags.warning("search", MISSING)
            return 0
        except PermissionError:
            diags.warning("search", f"search skipped: {binary} is not executable")
            return 0
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"pagefind did not finish in {TIME_LIMIT:.0f}s; the previous output is kept") from None
        if proc.returncode != 0 or not (bundle / "pagefind.js").is_file():
            # A broken indexer is the build host's problem, not the content's: stop before the swap.
            detail = _last_lines(proc.stderr or proc.stdout)
            raise EnvironmentProblem(
                f"pagefind failed (exit {proc.returncode}); the previous output is kept" + (f": {detail}" if detail else "")
            )
        files: dict[str, str] = {}
        for path in sorted(bundle.rglob("*")):
            if path.is_file():
                rel = f"{BUNDLE_DIR}/{path.relative_to(bundle).as_posix()}"
                tx.write(rel, path.read_bytes())
                files[rel] = tx.hashes[rel]
    record = {"key": key, "files": files}
    tx.write(RECORD, (json.dumps(record, indent=1, sort_keys=True) + "\n").encode("utf-8"))
    return len(files) + 1


def search_key(binary: Path, language: str, hashes: dict[str, str]) -> str:
    """What the bundle depends on: every HTML file Pagefind reads, the binary and its options."""
    h = hashlib.sha256(f"{RECORD_VERSION}\0{language}\0".encode())
    try:
        st = binary.stat()
        h.update(f"{binary.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    except OSError:
        h.update(str(binary).encode())
    for rel in sorted(hashes):
        if rel.endswith(".html") and not rel.startswith(BUNDLE_DIR + "/"):
            h.update(f"{rel}\0{hashes[rel]}\0".encode())
    return h.hexdigest()


def keep_previous_bundle(tx: Sink, key: str) -> int | None:
    """Reuse the previous output's bundle when nothing it depends on changed (None: rebuild)."""
    # Pagefind writes its filter chunks in hash-map order, so re-indexing identical pages gives new
    # bytes and file names (Pagefind#638); reusing keeps unchanged builds byte-identical and fast.
    previous = Path(tx.out)
    try:
        record = json.loads((previous / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("files"), dict):
        return None
    files: dict[str, bytes] = {}
    for rel, digest in record["files"].items():
        if not (isinstance(rel, str) and rel.startswith(BUNDLE_DIR + "/") and ".." not in rel.split("/")):
            return None
        path = previous / rel
        try:
            # Only regular files: a link planted in the old output must never carry a file into the new one.
            if path.is_symlink() or not path.is_file():
                return None
            data = path.read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            return None
        files[rel] = data
    # Everything checked before the first write: a half-kept bundle must never mix with a new one.
    for rel, data in files.items():
        tx.write(rel, data)
    tx.write(RECORD, (previous / RECORD).read_bytes())
    return len(files) + 1


def _quiet_env() -> dict[str, str]:
    """Pagefind reads PAGEFIND_* variables as options: drop the caller's so a build is reproducible."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PAGEFIND_")}


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return " | ".join(lines[-n:])

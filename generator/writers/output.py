"""Atomic output: build into a sibling temp folder, validate, swap; an exclusive lock per project."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import posixpath
import shutil
import stat
import subprocess
import time
from pathlib import Path

from ..diagnostics import EnvironmentProblem

MANIFEST = "sitegen-manifest.json"
"""Written last into every output: the list of files and their hashes (publish checks it)."""


def check_output_dir(project: Path, out: Path) -> None:
    """Refuse output folders whose deletion would lose someone's work (SECURITY PS-04)."""
    project = project.resolve()
    target = out.resolve()
    home = Path.home().resolve()
    content = (project / "content").resolve()
    templates = (project / "templates").resolve()
    bad = {Path("/"), home, project, content, templates}
    if target in bad or target in project.parents:
        raise EnvironmentProblem(f"refusing to use output dir {out}: it is the project, its content, / or ~")
    for protected in (content, templates, project / "generator", project / ".git"):
        try:
            target.relative_to(protected.resolve())
            raise EnvironmentProblem(f"refusing to use output dir {out}: it lies inside {protected.name}/")
        except ValueError:
            pass
    if target.exists():
        if not target.is_dir():
            raise EnvironmentProblem(f"refusing to use output dir {out}: it is not a folder")
        if (target / ".git").exists():
            raise EnvironmentProblem(f"refusing to use output dir {out}: it holds a .git folder")
        if any(target.iterdir()) and not (target / MANIFEST).is_file():
            raise EnvironmentProblem(
                f"refusing to use output dir {out}: it holds files not written by sitegen (no {MANIFEST}); empty it or choose another --out"
            )


class BuildLock:
    """An exclusive, non-blocking lock so two builds never write one output."""

    def __init__(self, project: Path):
        self.path = project / ".sitegen.lock"
        self.fd: int | None = None

    def __enter__(self) -> "BuildLock":
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot create lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            self.fd = None
            raise EnvironmentProblem("another build holds .sitegen.lock; wait for it to finish") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def recover(out: Path) -> None:
    """Clean up after a killed build: drop stale temp trees, restore an old tree if output is gone."""
    parent = out.parent
    if not parent.is_dir():
        return
    olds = sorted(parent.glob(f"{out.name}.old-*"))
    if not out.exists() and olds:
        os.replace(olds[-1], out)
        olds = olds[:-1]
    for p in list(parent.glob(f"{out.name}.tmp-*")) + olds:
        shutil.rmtree(p, ignore_errors=True)


class OutputTransaction:
    """Files go into `<out>.tmp-<pid>`; `commit()` swaps it in; anything else leaves `out` untouched."""

    def __init__(self, out: Path, trash: Path | None = None):
        self.out = out
        self.tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
        self.trash = trash
        """A folder on the same disk where the replaced tree is deleted in the background (None: now)."""
        self._made: set[Path] = set()
        """Folders already created in the temp tree (mkdir is slow on some disks; a page has its own folder)."""
        self.hashes: dict[str, str] = {}
        self.written = 0
        self.linked = 0
        self.changed: set[str] = set()
        """Files whose bytes differ from the previous output."""

    def __enter__(self) -> "OutputTransaction":
        try:
            self.out.parent.mkdir(parents=True, exist_ok=True)
            if self.tmp.exists():
                shutil.rmtree(self.tmp)
            self.tmp.mkdir()
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {self.tmp}: {exc.strerror}") from None
        return self

    def _target(self, rel: str) -> Path:
        return _output_path(self.tmp, rel)

    def write(self, rel: str, data: bytes) -> None:
        """Write one file; unchanged files are hard-linked from the previous output (mtime kept)."""
        dest = self._target(rel)
        digest = hashlib.sha256(data).hexdigest()
        self.hashes[rel] = digest
        try:
            self._mkdir(dest.parent)
            old = self.out / rel
            if _same_file_content(old, data):
                os.link(old, dest)
                self.linked += 1
                return
            with open(dest, "wb") as fh:
                fh.write(data)
            self.written += 1
            self.changed.add(rel)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {self.out / rel}: {exc.strerror}") from None

    def keep(self, rel: str, digest: str) -> bool:
        """Link a file the caller knows is unchanged from the previous output, without reading it.

        False when the old file is gone (the caller then writes it). The caller vouches for the
        digest (incremental builds check inode, size and mtime against their record first).
        """
        dest = self._target(rel)
        try:
            self._mkdir(dest.parent)
            os.link(self.out / rel, dest, follow_symlinks=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {self.out / rel}: {exc.strerror}") from None
        self.hashes[rel] = digest
        self.linked += 1
        return True

    def copy(self, rel: str, src: Path) -> None:
        data = src.read_bytes()
        self.write(rel, data)

    def _mkdir(self, folder: Path) -> None:
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)

    def commit(self) -> None:
        """Write the manifest last, then swap the trees with two renames."""
        manifest = {"generator": "sitegen", "files": dict(sorted(self.hashes.items()))}
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        old = self.out.parent / f"{self.out.name}.old-{os.getpid()}-{int(time.time())}"
        try:
            if self.out.exists():
                os.replace(self.out, old)
            os.replace(self.tmp, self.out)
        except OSError as exc:
            if old.exists() and not self.out.exists():
                os.replace(old, self.out)
            raise EnvironmentProblem(f"cannot replace {self.out}: {exc.strerror}") from None
        self._discard(old)

    def _discard(self, old: Path) -> None:
        """The replaced tree is not needed any more; move it to the trash, which empties itself."""
        if not old.exists():
            return
        # The trash lives in the cache folder, which may come with a repository: never through a link.
        if self.trash is not None and not self.trash.is_symlink():
            try:
                self.trash.mkdir(parents=True, exist_ok=True)
                os.replace(old, self.trash / old.name)
            except OSError:
                pass
            else:
                empty_trash(self.trash)
                return
        shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.tmp.exists():
            self.abort()


def _output_path(root: Path, rel: str) -> Path:
    """root/rel, refused when rel leaves root. A lexical check suffices: sitegen alone writes the
    trees it checks (a fresh temp tree, or serve's own temp preview), and it never writes symlinks."""
    norm = posixpath.normpath(rel)
    if (not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel or norm in (".", "..")
            or norm.startswith("../") or norm.startswith("/")):
        raise EnvironmentProblem(f"output path {rel!r} resolves outside the output directory")
    return root / norm


def empty_trash(trash: Path) -> None:
    """Delete replaced trees in a detached process: on a slow disk removing thousands of files takes
    seconds, and the new output is already in place (the trash is never restored, unlike `.old-*`)."""
    try:
        victims = [str(p) for p in trash.iterdir()]
    except OSError:
        return
    if not victims:
        return
    try:
        subprocess.Popen(
            ["rm", "-rf", "--", *victims],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )
    except OSError:
        for v in victims:
            shutil.rmtree(v, ignore_errors=True)


class PreviewOutput:
    """serve's writer: changed files are replaced one by one (each atomically), stale ones removed.

    The preview lives in a temp folder and is never published, and content errors stop a build
    before anything is written, so a whole-tree swap per keystroke is not worth its cost.
    """

    def __init__(self, out: Path):
        self.out = out
        self.hashes: dict[str, str] = {}
        self.written = 0
        self.linked = 0
        self.changed: set[str] = set()

    def __enter__(self) -> "PreviewOutput":
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {self.out}: {exc.strerror}") from None
        return self

    def __exit__(self, *exc) -> None:
        return None

    def _target(self, rel: str) -> Path:
        return _output_path(self.out, rel)

    def write(self, rel: str, data: bytes) -> None:
        dest = self._target(rel)
        self.hashes[rel] = hashlib.sha256(data).hexdigest()
        if _same_file_content(dest, data):
            self.linked += 1
            return
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                fh.write(data)
            os.replace(tmp, dest)
        except OSError as exc:
            raise EnvironmentProblem(f"cannot write {dest}: {exc.strerror}") from None
        self.written += 1
        self.changed.add(rel)

    def keep(self, rel: str, digest: str) -> bool:
        try:
            if not stat.S_ISREG(os.lstat(self._target(rel)).st_mode):
                return False
        except OSError:
            return False
        self.hashes[rel] = digest
        self.linked += 1
        return True

    def copy(self, rel: str, src: Path) -> None:
        self.write(rel, src.read_bytes())

    def commit(self) -> None:
        """Remove files the previous build wrote and this one did not, then write the manifest."""
        previous = (read_manifest(self.out) or {}).get("files", {})
        for rel in previous:
            if rel in self.hashes:
                continue
            try:
                target = self._target(rel)
                target.unlink(missing_ok=True)
                for parent in target.parents:
                    if parent == self.out or not parent.is_relative_to(self.out):
                        break
                    parent.rmdir()  # stops at the first folder that still holds something
            except (OSError, EnvironmentProblem):
                continue
        manifest = {"generator": "sitegen", "files": dict(sorted(self.hashes.items()))}
        (self.out / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _same_file_content(old: Path, data: bytes) -> bool:
    try:
        if old.is_symlink() or not old.is_file() or old.stat().st_size != len(data):
            return False
        return old.read_bytes() == data
    except OSError:
        return False


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None

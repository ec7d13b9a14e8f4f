"""Content-addressed file cache with atomic writes; always safe to delete."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from ..diagnostics import Diagnostic


def hash_key(*parts: str | bytes) -> str:
    """A stable key for a job: sha256 over its inputs, options and tool versions."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and os.replace, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class Cache:
    """One namespace of the cache folder (e.g. `.sitegen-cache/diagrams`).

    Entries are files named by key; each begins with a sha256 of its payload so a corrupt
    entry (truncated, edited) is detected, reported as a miss and rebuilt; `problems()` names
    such entries as diagnostics for the stage that owns the cache. Entries are data (JSON, SVG,
    PDF or font bytes) that the owning stage checks for shape on load; nothing here is code: the
    folder may come with a repository.
    """

    def __init__(self, root: Path | None, namespace: str):
        self.dir = Path(root) / namespace if root is not None else None
        self.namespace = namespace
        self.corrupt: list[str] = []
        """Keys of entries found damaged in this run (by the digest check here, or by the caller's parser)."""

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / key[:2] / key

    def get(self, key: str) -> bytes | None:
        if self.dir is None:
            return None
        try:
            raw = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return None
        digest, _, payload = raw.partition(b"\n")
        if hashlib.sha256(payload).hexdigest().encode() != digest:
            self.corrupt.append(key)
            return None
        return payload

    def put(self, key: str, payload: bytes) -> None:
        if self.dir is None:
            return
        digest = hashlib.sha256(payload).hexdigest().encode()
        try:
            write_atomic(self._path(key), digest + b"\n" + payload)
        except OSError:
            # A cache that cannot be written only costs speed; the build goes on.
            pass

    def problems(self) -> list[Diagnostic]:
        """One warning per damaged entry found so far: the caller rebuilt it, the user may want to know why."""
        return [
            Diagnostic("warning", "cache", f"{self.namespace} cache entry {key} was corrupt; rebuilt")
            for key in dict.fromkeys(self.corrupt)
        ]

    def get_text(self, key: str) -> str | None:
        data = self.get(key)
        if data is None:
            return None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            self.corrupt.append(key)  # not text we wrote (an old pickle, say): a miss, rebuilt and named
            return None

    def put_text(self, key: str, text: str) -> None:
        self.put(key, text.encode("utf-8"))

    def get_markup(self, key: str) -> dict | None:
        """A rendered-markup entry (`{"html", "errors", "warnings"}`, as diagrams and formulas store them).

        Checked, not trusted: a wrong shape is a damaged entry, rebuilt and named, never a crash.
        """
        text = self.get_text(key)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            data = None
        if (isinstance(data, dict) and isinstance(data.get("html"), str)
                and all(isinstance(data.get(k, []), list) and all(isinstance(m, str) for m in data.get(k, [])) for k in ("errors", "warnings"))):
            return {"html": data["html"], "errors": list(data.get("errors", [])), "warnings": list(data.get("warnings", []))}
        self.corrupt.append(key)
        return None

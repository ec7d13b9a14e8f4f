"""`sitegen publish`: the built site as ONE new commit on top of the remote gh-pages head, pushed.

Rules (SECURITY-CASES §10, PB-01..05): fetch first; build the commit with git plumbing and a
temporary index so the user's branch, index and working tree are never touched; push without
force (`--force` is the only way to rewrite the branch, and it names what is lost); never push
symlinks, dotfiles or keys; keep `CNAME`; always add `.nojekyll`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .. import __version__
from pydantic import ValidationError

from ..config import PublishConfig, load_config
from ..diagnostics import Diagnostic, Diagnostics, EnvironmentProblem, Location, SitegenError
from ..paths import SECRET_NAMES
from ..writers.output import MANIFEST

NETWORK_TIMEOUT = 300.0
LOCAL_TIMEOUT = 120.0
MAX_FILE_BYTES = 100 * 1024 * 1024
"""GitHub rejects pushes with files over 100 MB."""
LOST_SHOWN = 20
"""How many commits a `--force` lists by name before summing up the rest."""

ALLOWED_DOTFILES = frozenset({".nojekyll"})
MANAGED_FILES = frozenset({".nojekyll", "CNAME"})
"""Files publish writes itself; the build manifest need not list them."""
UNPUBLISHED = frozenset({MANIFEST})
"""Build bookkeeping kept out of the published tree."""

ZERO_SHA = "0" * 40


@dataclass
class PublishOptions:
    """What `sitegen publish` was asked to do; None means "take it from sitegen.yaml"."""

    remote: str | None = None
    branch: str | None = None
    message: str | None = None
    cname: str | None = None
    dry_run: bool = False
    force: bool = False
    manifest: Path | None = None
    """Build manifest to check the output against (default: the one the build wrote into the output)."""


@dataclass(frozen=True)
class FileChange:
    """One path that differs between the remote branch and the new commit."""

    status: Literal["A", "M", "D"]
    path: str


@dataclass
class PublishResult:
    """What publish did (or, with --dry-run, would do)."""

    remote: str
    branch: str
    source_sha: str
    parent: str | None
    """The remote head the new commit sits on (None: new branch, or --force)."""
    commit: str | None
    """The new commit (None with --dry-run)."""
    changes: list[FileChange]
    file_count: int
    pushed: bool
    dry_run: bool
    lost: list[str] = field(default_factory=list)
    """`sha subject` of commits a --force push removes from the branch."""
    lost_count: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        """Human-readable lines for the CLI."""
        lines = list(self.notes)
        if self.lost_count:
            lines.append(f"--force: {self.lost_count} commit(s) on {self.remote}/{self.branch} will no longer be on the branch:")
            lines.extend(f"  lost {entry}" for entry in self.lost)
            if self.lost_count > len(self.lost):
                lines.append(f"  … and {self.lost_count - len(self.lost)} more")
        if self.dry_run:
            lines.extend(f"{c.status} {c.path}" for c in self.changes)
        counts = {s: sum(1 for c in self.changes if c.status == s) for s in "AMD"}
        what = f"{counts['A']} added, {counts['M']} changed, {counts['D']} removed"
        base = f"on top of {self.parent[:12]}" if self.parent else "as a new branch" if not self.lost_count else "replacing the branch"
        if self.dry_run:
            lines.append(f"dry run: would publish {self.file_count} files to {self.remote}/{self.branch} {base} ({what}); nothing pushed")
        else:
            lines.append(
                f"published {self.file_count} files to {self.remote}/{self.branch}: commit {self.commit[:12] if self.commit else '?'} {base} ({what})"
            )
        return lines


@dataclass(frozen=True)
class OutputFile:
    """A regular file of the output, by its path inside the published tree."""

    rel: str
    path: Path
    executable: bool


@dataclass(frozen=True)
class Repository:
    """The source repository publish runs in."""

    root: Path
    head_ref: str
    source_sha: str
    dirty: bool


# --- git -------------------------------------------------------------------------------------


def _git_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    # Never wait for a password prompt: a publish that needs one fails with git's message instead.
    env["GIT_TERMINAL_PROMPT"] = "0"
    env.pop("GIT_INDEX_FILE", None)
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    if extra:
        env.update(extra)
    return env


def _git(
    cwd: Path,
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = LOCAL_TIMEOUT,
    check: bool = True,
    code: str = "publish-git",
) -> subprocess.CompletedProcess[bytes]:
    """Run git; a failure becomes an EnvironmentProblem that shows git's own stderr."""
    git = shutil.which("git")
    if git is None:
        raise _problem("publish-git", "git is not installed (sitegen publish needs the git command)")
    try:
        proc = subprocess.run(
            [git, *args], cwd=cwd, input=input, capture_output=True, env=_git_env(env), timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise _problem(code, f"`git {args[0]}` did not finish within {timeout:g} s; nothing was pushed") from None
    if check and proc.returncode != 0:
        raise _problem(code, f"`git {' '.join(args[:2])}` failed: {_stderr(proc)}")
    return proc


def _stderr(proc: subprocess.CompletedProcess[bytes]) -> str:
    """Git's own words: stderr, plus stdout where --porcelain put the per-ref verdict."""
    parts = [proc.stderr.decode("utf-8", "replace").strip(), proc.stdout.decode("utf-8", "replace").strip()]
    return "\n".join(p for p in parts if p) or f"exit status {proc.returncode}"


def _out(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode("utf-8", "replace").strip()


def _problem(code: str, message: str, location: Location | None = None) -> EnvironmentProblem:
    return EnvironmentProblem("nothing was published", [Diagnostic("error", code, message, location)])


def load_repository(project: Path) -> Repository:
    """The git repository around the project; refuses states publish must not run in."""
    top = _git(project, "rev-parse", "--show-toplevel", check=False)
    if top.returncode != 0:
        raise _problem("publish-git", f"not a git repository: {project} (publish needs the site's sources in git: run `git init` and commit them)")
    root = Path(_out(top))
    head_ref = _git(root, "symbolic-ref", "-q", "HEAD", check=False)
    if head_ref.returncode != 0:
        raise _problem("publish-git", "HEAD is detached: check out the branch you publish from (e.g. `git switch main`)")
    sha = _git(root, "rev-parse", "--verify", "-q", "HEAD^{commit}", check=False)
    if sha.returncode != 0:
        raise _problem("publish-git", f"{_out(head_ref)} has no commits yet: commit the site's sources before publishing")
    dirty = _git(root, "status", "--porcelain", "--untracked-files=no").stdout.strip() != b""
    return Repository(root=root, head_ref=_out(head_ref), source_sha=_out(sha), dirty=dirty)


def _checked_out_at(repo: Repository, branch_ref: str) -> list[Path]:
    """Worktrees that have the branch checked out."""
    listing = _git(repo.root, "worktree", "list", "--porcelain", "-z").stdout.decode("utf-8", "surrogateescape")
    found, current = [], None
    for entry in listing.split("\0"):
        if entry.startswith("worktree "):
            current = Path(entry[len("worktree ") :])
        elif entry == f"branch {branch_ref}" and current is not None:
            found.append(current)
    return found


def check_branch_checkouts(repo: Repository, branch: str) -> list[Path]:
    """Refuse when the publish branch is checked out here or dirty elsewhere; return clean checkouts."""
    ref = f"refs/heads/{branch}"
    if repo.head_ref == ref:
        raise _problem("publish-git", f"the current branch is {branch}: switch to the branch that holds the site's sources")
    clean = []
    for path in _checked_out_at(repo, ref):
        if not path.is_dir():
            continue
        status = _git(path, "status", "--porcelain", check=False)
        if status.returncode != 0 or status.stdout.strip():
            raise _problem(
                "publish-git",
                f"{branch} is checked out at {path} with uncommitted changes: commit, stash or remove that worktree first",
            )
        clean.append(path)
    return clean


def resolve_remote_head(repo: Repository, remote: str, branch: str) -> str | None:
    """Fetch the remote branch and return its head (None when the branch does not exist yet)."""
    # A name starting with "-" would reach git as an option (e.g. --upload-pack=…), never as a remote.
    if remote.startswith("-") or _git(repo.root, "remote", "get-url", "--", remote, check=False).returncode != 0:
        known = _out(_git(repo.root, "remote")).split()
        hint = f" (remotes: {', '.join(known)})" if known else " (add one with `git remote add origin URL`)"
        raise _problem("publish-remote", f"no such remote '{remote}'{hint}")
    ref = f"refs/heads/{branch}"
    probe = _git(repo.root, "ls-remote", "--exit-code", remote, ref, check=False, timeout=NETWORK_TIMEOUT, code="publish-remote")
    if probe.returncode == 2:
        return None
    if probe.returncode != 0:
        raise _problem("publish-remote", f"cannot reach remote '{remote}': {_stderr(probe)}")
    tracking = f"refs/remotes/{remote}/{branch}"
    fetched = _git(
        repo.root, "fetch", "--no-tags", "--quiet", remote, f"+{ref}:{tracking}",
        check=False, timeout=NETWORK_TIMEOUT, code="publish-remote",
    )
    if fetched.returncode != 0:
        raise _problem("publish-remote", f"fetching {remote}/{branch} failed: {_stderr(fetched)}")
    return _out(_git(repo.root, "rev-parse", "--verify", f"{tracking}^{{commit}}"))


def _local_head(repo: Repository, branch: str) -> str | None:
    proc = _git(repo.root, "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}", check=False)
    return _out(proc) if proc.returncode == 0 else None


def _commits_only_in(repo: Repository, tip: str, exclude: str | None, limit: int) -> tuple[list[str], int]:
    """`sha subject` of commits reachable from tip but not from exclude, and their count."""
    spec = [tip] + ([f"^{exclude}"] if exclude else [])
    count = int(_out(_git(repo.root, "rev-list", "--count", *spec)) or 0)
    shown = _out(_git(repo.root, "log", f"--max-count={limit}", "--format=%h %s", *spec))
    return ([line for line in shown.splitlines() if line], count)


def _tree_listing(repo: Repository, commit: str | None) -> dict[str, tuple[str, str]]:
    """path → (mode, blob sha) of every file in a commit."""
    if commit is None:
        return {}
    raw = _git(repo.root, "ls-tree", "-r", "-z", "--full-tree", commit).stdout.decode("utf-8", "surrogateescape")
    out = {}
    for entry in raw.split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob":
            out[path] = (mode, sha)
    return out


# --- the output --------------------------------------------------------------------------------


def _display(path: Path, project: Path) -> str:
    try:
        return path.relative_to(project).as_posix()
    except ValueError:
        return str(path)


def _looks_like_private_key(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            head = fh.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in head.split(b"\n", 1)[0]


def _bad_name(name: str) -> bool:
    """Control characters, or bytes that are not UTF-8 (surrogate-escaped by os.scandir)."""
    return any(ord(c) < 32 or c == "\x7f" or "\udc80" <= c <= "\udcff" for c in name)


def collect_output_files(output_dir: Path, project: Path) -> tuple[list[OutputFile], list[Diagnostic]]:
    """Every file to publish, or diagnostics for what must never be pushed (all of them at once)."""
    diags = Diagnostics()
    files: list[OutputFile] = []
    shown = _display(output_dir, project)
    if not output_dir.is_dir():
        return [], [Diagnostic("error", "publish-incomplete", f"refusing to publish: {shown}/ does not exist (run `sitegen build`)")]

    def refuse(code: str, message: str, path: Path) -> None:
        diags.error(code, message, Location(_display(path, project)))

    def walk(directory: Path, prefix: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            refuse("publish-file", f"cannot read {_display(directory, project)}: {exc.strerror}", directory)
            return
        for entry in entries:
            path = Path(entry.path)
            rel = f"{prefix}{entry.name}"
            where = f"{shown}/{rel}"  # the same as _display(path), without a relative_to per file
            if _bad_name(entry.name):
                refuse("publish-file", f"refusing to publish {where}: the file name contains control characters or is not UTF-8", path)
                continue
            if prefix == "" and entry.name in UNPUBLISHED:
                continue
            if entry.is_symlink():
                refuse("publish-symlink", f"refusing to publish symlink {where} (it points to {os.readlink(path)}); copy the file instead", path)
                continue
            if entry.name.startswith(".") and not (prefix == "" and entry.name in ALLOWED_DOTFILES):
                refuse("publish-secret", f"refusing to publish hidden or key file {where}", path)
                continue
            if entry.is_dir(follow_symlinks=False):
                walk(path, rel + "/")
                continue
            if not entry.is_file(follow_symlinks=False):
                refuse("publish-file", f"refusing to publish {where}: not a regular file", path)
                continue
            if SECRET_NAMES.match(entry.name) or _looks_like_private_key(path):
                refuse("publish-secret", f"refusing to publish hidden or key file {where} (looks like a private key)", path)
                continue
            info = entry.stat(follow_symlinks=False)
            if info.st_size > MAX_FILE_BYTES:
                refuse("publish-file", f"refusing to publish {where}: {info.st_size // 2**20} MiB is over GitHub's 100 MB file limit", path)
                continue
            files.append(OutputFile(rel, path, bool(info.st_mode & stat.S_IXUSR)))

    walk(output_dir, "")
    if not diags.items and not any(f.rel == "index.html" for f in files):
        what = "empty" if not files else "incomplete (no index.html)"
        diags.error("publish-incomplete", f"refusing to publish: {shown}/ is {what}; run `sitegen build`", Location(shown))
    return files, diags.items


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_manifest(files: list[OutputFile], output_dir: Path, manifest: Path, project: Path) -> list[Diagnostic]:
    """The output must be exactly what the last successful build wrote (PB-02)."""
    shown = _display(output_dir, project)
    where = Location(_display(manifest, project))

    def incomplete(reason: str) -> list[Diagnostic]:
        return [Diagnostic("error", "publish-incomplete", f"refusing to publish: {shown}/ is empty or incomplete ({reason}); run `sitegen build`", where)]

    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return incomplete("no build manifest: the last build failed or never ran")
    except (OSError, ValueError) as exc:
        return incomplete(f"unreadable build manifest: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return incomplete("the build manifest has no file list")
    built_for = data.get("output_dir")
    if built_for is not None and (project / str(built_for)).resolve() != output_dir.resolve():
        return incomplete(f"the last build wrote {built_for}, not {output_dir}")
    expected: dict[str, str] = {k: v for k, v in data["files"].items() if k not in MANAGED_FILES}
    present = {f.rel: f for f in files if f.rel not in MANAGED_FILES}
    missing = sorted(set(expected) - set(present))
    extra = sorted(set(present) - set(expected))
    changed = sorted(rel for rel in set(expected) & set(present) if _sha256(present[rel].path) != expected[rel])
    problems = [("missing", missing), ("not from the build", extra), ("changed since the build", changed)]
    parts = [f"{len(paths)} {label}: {', '.join(paths[:5])}{' …' if len(paths) > 5 else ''}" for label, paths in problems if paths]
    return incomplete("; ".join(parts)) if parts else []


# --- the commit --------------------------------------------------------------------------------


def _hash_files(repo: Repository, files: list[OutputFile], write: bool) -> list[str]:
    """Blob ids of the files, byte for byte (no gitattributes filters), stored when `write`."""
    if not files:
        return []
    args = ["hash-object", "--no-filters", "--stdin-paths"] + (["-w"] if write else [])
    data = "".join(f"{f.path}\n" for f in files).encode("utf-8", "surrogateescape")
    shas = _out(_git(repo.root, *args, input=data)).split()
    if len(shas) != len(files):
        raise _problem("publish-git", "git hash-object returned an unexpected number of ids")
    return shas


def _blob(repo: Repository, content: bytes, write: bool) -> str:
    args = ["hash-object", "--stdin"] + (["-w"] if write else [])
    return _out(_git(repo.root, *args, input=content))


def _write_tree(repo: Repository, entries: dict[str, tuple[str, str]]) -> str:
    """A tree object from path → (mode, sha), built in a temporary index (never the user's)."""
    with tempfile.TemporaryDirectory(prefix="sitegen-publish-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        info = "".join(f"{mode} {sha}\t{path}\0" for path, (mode, sha) in sorted(entries.items()))
        _git(repo.root, "update-index", "--add", "-z", "--index-info", input=info.encode("utf-8", "surrogateescape"), env=env)
        return _out(_git(repo.root, "write-tree", env=env))


def _commit_message(template: str, repo: Repository) -> str:
    short = repo.source_sha[:12]
    # str.replace, not str.format: braces in a user's message must not raise.
    text = template.replace("{sha}", short).strip() or f"Publish site from {short}"
    trailer = f"Source-Commit: {repo.source_sha}"
    if repo.dirty:
        trailer += "\nSource-Dirty: true (the build included uncommitted changes)"
    return f"{text}\n\n{trailer}\nPublished-By: sitegen {__version__}\n"


def _identity_env(repo: Repository) -> dict[str, str]:
    """Fall back to a neutral identity where git has none, instead of failing after the build."""
    env = {}
    for who in ("AUTHOR", "COMMITTER"):
        if _git(repo.root, "var", f"GIT_{who}_IDENT", check=False).returncode != 0:
            env[f"GIT_{who}_NAME"] = "sitegen"
            env[f"GIT_{who}_EMAIL"] = "sitegen@localhost"
    return env


def _diff(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[FileChange]:
    changes = [FileChange("A", p) for p in new if p not in old]
    changes += [FileChange("M", p) for p in new if p in old and old[p] != new[p]]
    changes += [FileChange("D", p) for p in old if p not in new]
    return sorted(changes, key=lambda c: c.path)


# --- the engine --------------------------------------------------------------------------------


def _load_publish_config(project: Path) -> PublishConfig:
    config, diags = load_config(project)
    if config is None:
        raise SitegenError("sitegen.yaml has errors", diags)
    return config.publish


def publish_site(project: Path, output_dir: Path, options: PublishOptions) -> PublishResult:
    """Commit output_dir as one new commit on the remote branch head and push it (or show the plan)."""
    project = project.resolve()
    output_dir = (project / output_dir).resolve() if not output_dir.is_absolute() else output_dir
    repo = load_repository(project)
    cfg = _load_publish_config(project)
    remote = options.remote or cfg.remote
    branch = options.branch or cfg.branch
    cname = options.cname or cfg.cname
    if options.cname is not None:
        cname = _validate_cname(options.cname)
    manifest = options.manifest or output_dir / MANIFEST
    _check_branch_name(project, branch)
    clean_checkouts = check_branch_checkouts(repo, branch)

    files, diags = collect_output_files(output_dir, project)
    if not diags:
        diags = check_manifest(files, output_dir, manifest, project)
    if diags:
        raise SitegenError(f"refusing to publish {_display(output_dir, project)}/", diags)

    remote_head = resolve_remote_head(repo, remote, branch)
    local_head = _local_head(repo, branch)
    notes: list[str] = []
    lost: list[str] = []
    lost_count = 0
    if options.force:
        for tip, exclude in ((remote_head, None), (local_head, remote_head)):
            if tip:
                names, count = _commits_only_in(repo, tip, exclude, LOST_SHOWN)
                lost += names[: max(0, LOST_SHOWN - len(lost))]
                lost_count += count
    elif local_head and local_head != remote_head:
        names, count = _commits_only_in(repo, local_head, remote_head, LOST_SHOWN)
        if count:
            raise _problem(
                "publish-diverged",
                f"local branch {branch} has {count} commit(s) that are not on {remote}/{branch} ({'; '.join(names[:3])}): "
                f"push them first, or delete the local branch, or use --force to replace the branch",
            )

    old = _tree_listing(repo, remote_head)
    write = not options.dry_run
    shas = _hash_files(repo, files, write=False)
    if write:
        # Only blobs the branch does not hold yet are stored: a re-publish writes what changed.
        known = {sha for _mode, sha in old.values()}
        _hash_files(repo, [f for f, sha in zip(files, shas) if sha not in known], write=True)
    new = {f.rel: ("100755" if f.executable else "100644", sha) for f, sha in zip(files, shas)}
    new[".nojekyll"] = ("100644", _blob(repo, b"", write))
    if cname:
        new["CNAME"] = ("100644", _blob(repo, f"{cname}\n".encode(), write))
        if "CNAME" in old and old["CNAME"] != new["CNAME"]:
            notes.append(f"CNAME changes to {cname}")
    elif "CNAME" not in new and "CNAME" in old:
        if cfg.keep_cname:
            new["CNAME"] = old["CNAME"]
            kept = _git(repo.root, "cat-file", "blob", old["CNAME"][1]).stdout.decode("utf-8", "replace").strip()
            notes.append(f"keeping CNAME ({kept}) from {remote}/{branch}; set publish.cname in sitegen.yaml to change it")
        else:
            notes.append("removing CNAME from the branch (publish.keep_cname is false)")
    changes = _diff(old, new)
    parent = None if options.force else remote_head
    result = PublishResult(
        remote=remote, branch=branch, source_sha=repo.source_sha, parent=parent, commit=None,
        changes=changes, file_count=len(new), pushed=False, dry_run=options.dry_run,
        lost=lost, lost_count=lost_count, notes=notes,
    )
    if options.dry_run:
        return result

    tree = _write_tree(repo, new)
    message = _commit_message(options.message or cfg.message, repo)
    parents = ["-p", parent] if parent else []
    commit = _out(_git(repo.root, "commit-tree", tree, *parents, "-F", "-", input=message.encode(), env=_identity_env(repo)))
    result.commit = commit
    _push(repo, remote, branch, commit, remote_head, options.force)
    result.pushed = True
    if clean_checkouts:
        notes.append(f"local branch {branch} is checked out at {clean_checkouts[0]}; it was left as it is")
    else:
        moved = _git(repo.root, "update-ref", "-m", "sitegen publish", f"refs/heads/{branch}", commit, local_head or ZERO_SHA, check=False)
        if moved.returncode != 0:
            notes.append(f"pushed, but local branch {branch} was not updated: {_stderr(moved)}")
    return result


def _validate_cname(value: str) -> str:
    """--cname gets the same check as publish.cname in sitegen.yaml."""
    try:
        return PublishConfig(cname=value.strip()).cname or ""
    except ValidationError:
        raise _problem("publish-cname", f"--cname {value!r}: must be a bare domain name such as docs.example.com") from None


def _check_branch_name(project: Path, branch: str) -> None:
    git = shutil.which("git")
    ok = git is not None and subprocess.run(
        [git, "check-ref-format", "--branch", branch], capture_output=True, cwd=project, env=_git_env()
    ).returncode == 0
    if not ok or branch.startswith("-"):
        raise _problem("publish-branch", f"not a valid branch name: {branch!r}")


def _push(repo: Repository, remote: str, branch: str, commit: str, expected: str | None, force: bool) -> None:
    """Push the commit; only --force rewrites, and then only over the head we fetched and showed."""
    ref = f"refs/heads/{branch}"
    args = ["push", "--porcelain"]
    if force:
        args.append(f"--force-with-lease={ref}:{expected or ''}")
    args += [remote, f"{commit}:{ref}"]
    proc = _git(repo.root, *args, check=False, timeout=NETWORK_TIMEOUT, code="publish-push")
    if proc.returncode != 0:
        raise _problem(
            "publish-push",
            f"push to {remote}/{branch} was rejected; nothing was published and local {branch} is unchanged.\n{_stderr(proc)}",
        )


def publish_project(project: Path, options: PublishOptions, build_options=None):
    """`sitegen publish`: build first (a failed or --strict-failing build raises), then publish that output."""
    from ..build import BuildOptions, build  # build sits below publish: import it only when used

    built = build(project, build_options or BuildOptions())
    return built, publish_site(project, built.out_dir or project / "output", options)

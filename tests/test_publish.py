"""`sitegen publish` against real git: a local bare repository as `origin`, no mocks (SECURITY §10)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from generator.diagnostics import EnvironmentProblem, SitegenError
from generator.commands.publish import PublishOptions, publish_site
from generator.writers.output import MANIFEST


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path_factory, monkeypatch):
    """A known git identity and no global/system config (hooks, autocrlf) from the host."""
    home = tmp_path_factory.mktemp("home")
    cfg = home / ".gitconfig"
    cfg.write_text("[user]\n\tname = Test\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for var in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(var, raising=False)


def git(cwd: Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout.strip()


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data if isinstance(data, bytes) else data.encode())


def write_output(project: Path, files: dict[str, str | bytes]) -> Path:
    """An output folder as a successful build leaves it: files plus the manifest, written last."""
    out = project / "output"
    write_files(out, files)
    hashes = {rel: hashlib.sha256((out / rel).read_bytes()).hexdigest() for rel in files}
    (out / MANIFEST).write_text(json.dumps({"generator": "sitegen", "files": hashes}))
    return out


SITE = {
    "index.html": "<!doctype html><title>Home</title><a href=\"reports/a/index.html\">a</a>",
    "reports/a/index.html": "<!doctype html><title>A</title>",
    "_static/app.css": "body { color: black }\n",
}


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "--bare", "-q", str(bare))
    return bare


@pytest.fixture
def project(tmp_path: Path, remote: Path) -> Path:
    """A site's source repository on `main`, with `origin` the bare repository and a built output."""
    proj = tmp_path / "site"
    proj.mkdir()
    git(proj, "init", "-q")
    write_files(proj, {
        "sitegen.yaml": "title: Test site\n",
        ".gitignore": "output/\n",
        "content/reports/a.md": "---\ntitle: A\n---\nHello\n",
    })
    git(proj, "add", ".")
    git(proj, "commit", "-q", "-m", "sources")
    git(proj, "remote", "add", "origin", str(remote))
    git(proj, "push", "-q", "origin", "main")
    write_output(proj, SITE)
    return proj


def remote_head(remote: Path, branch: str = "gh-pages") -> str | None:
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}"], cwd=remote, capture_output=True, text=True)
    return proc.stdout.strip() or None


def remote_files(remote: Path, ref: str = "gh-pages") -> dict[str, bytes]:
    names = git(remote, "ls-tree", "-r", "-z", "--name-only", ref).split("\0")
    return {n: subprocess.run(["git", "show", f"{ref}:{n}"], cwd=remote, capture_output=True, check=True).stdout for n in names if n}


def user_state(proj: Path) -> tuple:
    """Everything publish must leave alone: branch, HEAD, index, working tree."""
    index = (proj / ".git" / "index").read_bytes()
    return (
        git(proj, "symbolic-ref", "HEAD"),
        git(proj, "rev-parse", "HEAD"),
        hashlib.sha256(index).hexdigest(),
        git(proj, "status", "--porcelain", "--ignored"),
    )


def second_clone(tmp_path: Path, remote: Path, name: str = "other") -> Path:
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    return clone


def push_hotfix(tmp_path: Path, remote: Path, files: dict[str, str], message: str = "hotfix") -> str:
    """Someone else commits to the remote gh-pages (creating it if needed)."""
    clone = second_clone(tmp_path, remote, f"other-{message.replace(' ', '-')}")
    if remote_head(remote):
        git(clone, "switch", "-q", "gh-pages")
    else:
        git(clone, "switch", "-q", "--orphan", "gh-pages")
    write_files(clone, files)
    git(clone, "add", ".")
    git(clone, "commit", "-q", "-m", message)
    git(clone, "push", "-q", "origin", "gh-pages")
    return git(clone, "rev-parse", "HEAD")


def publish(proj: Path, **kw) -> object:
    return publish_site(proj, proj / "output", PublishOptions(**kw))


# --- the normal path ------------------------------------------------------------------------


def test_first_publish_creates_the_branch_with_one_commit(project: Path, remote: Path):
    before = user_state(project)
    result = publish(project)
    head = remote_head(remote)
    assert result.pushed and result.commit == head and result.parent is None
    assert git(remote, "rev-list", "--count", "gh-pages") == "1"
    files = remote_files(remote)
    assert set(files) == {"index.html", "reports/a/index.html", "_static/app.css", ".nojekyll"}
    assert files["_static/app.css"] == SITE["_static/app.css"].encode()
    assert files[".nojekyll"] == b""
    assert MANIFEST not in files
    # The commit message records the source commit; the local branch follows the remote.
    source = git(project, "rev-parse", "HEAD")
    assert f"Source-Commit: {source}" in git(remote, "log", "-1", "--format=%B", "gh-pages")
    assert git(project, "rev-parse", "gh-pages") == head
    assert user_state(project) == before


def test_publish_twice_stacks_two_commits_and_leaves_the_user_alone(project: Path, remote: Path):
    (project / "notes.txt").write_text("uncommitted work\n")  # an untracked file in the user's tree
    git(project, "add", "notes.txt")  # …and a staged change: the index must survive as it is
    before = user_state(project)
    first = publish(project).commit
    write_output(project, {**SITE, "index.html": "<!doctype html><title>Home v2</title>"})
    second = publish(project)
    assert git(remote, "rev-list", "--count", "gh-pages") == "2"
    assert second.parent == first
    assert git(remote, "rev-parse", "gh-pages^") == first
    assert [c.path for c in second.changes] == ["index.html"] and second.changes[0].status == "M"
    assert b"v2" in remote_files(remote)["index.html"]
    assert user_state(project) == before
    assert git(project, "diff", "--cached", "--name-only") == "notes.txt"


def test_commit_message_template_and_dirty_source_are_recorded(project: Path, remote: Path):
    (project / "sitegen.yaml").write_text("title: Test site\npublish:\n  message: 'Deploy {sha} {not-a-field}'\n")
    publish(project)
    body = git(remote, "log", "-1", "--format=%B", "gh-pages")
    sha = git(project, "rev-parse", "HEAD")
    assert body.startswith(f"Deploy {sha[:12]} {{not-a-field}}")
    assert f"Source-Commit: {sha}" in body
    assert "Source-Dirty: true" in body  # sitegen.yaml was changed and not committed


def test_a_repository_without_identity_still_publishes(project: Path, remote: Path, tmp_path: Path, monkeypatch):
    empty = tmp_path / "empty.gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    git(project, "config", "user.useConfigOnly", "true")
    result = publish(project)
    assert git(remote, "log", "-1", "--format=%an <%ae>", "gh-pages") == "sitegen <sitegen@localhost>"
    assert result.pushed


def test_output_bytes_are_published_without_git_filters(project: Path, remote: Path):
    git(project, "config", "core.autocrlf", "true")
    (project / ".gitattributes").write_text("* text eol=crlf\n")
    data = {**SITE, "data/raw.txt": "line one\nline two\n", "中文/报告.html": "<p>你好</p>\n"}
    write_output(project, data)
    publish(project)
    files = remote_files(remote)
    assert files["data/raw.txt"] == b"line one\nline two\n"
    assert files["中文/报告.html"] == "<p>你好</p>\n".encode()


def test_dry_run_lists_changes_and_pushes_nothing(project: Path, remote: Path):
    publish(project)
    head = remote_head(remote)
    write_output(project, {"index.html": "<!doctype html><title>new</title>", "_static/app.css": "x", "new.html": "n"})
    (project / "output" / "reports" / "a" / "index.html").unlink()
    (project / "output" / MANIFEST).write_text(json.dumps({"files": {
        rel: hashlib.sha256((project / "output" / rel).read_bytes()).hexdigest()
        for rel in ("index.html", "_static/app.css", "new.html")
    }}))
    result = publish(project, dry_run=True)
    assert not result.pushed and result.commit is None
    assert [(c.status, c.path) for c in result.changes] == [
        ("M", "_static/app.css"), ("M", "index.html"), ("A", "new.html"), ("D", "reports/a/index.html"),
    ]
    lines = result.summary()
    assert "D reports/a/index.html" in lines and "A new.html" in lines
    assert "nothing pushed" in lines[-1]
    assert remote_head(remote) == head
    assert git(project, "rev-parse", "gh-pages") == head


# --- PB-01: CNAME and .nojekyll ------------------------------------------------------------


def test_pb01_cname_on_the_branch_is_kept(project: Path, remote: Path, tmp_path: Path):
    push_hotfix(tmp_path, remote, {"CNAME": "docs.example.com\n", "index.html": "old"}, "set domain")
    result = publish(project)
    files = remote_files(remote)
    assert files["CNAME"] == b"docs.example.com\n"
    assert files[".nojekyll"] == b""
    assert files["_static/app.css"] == SITE["_static/app.css"].encode()
    assert any("keeping CNAME (docs.example.com)" in n for n in result.notes)
    assert "CNAME" not in [c.path for c in result.changes]


def test_pb01_cname_from_config_and_flag(project: Path, remote: Path, tmp_path: Path):
    push_hotfix(tmp_path, remote, {"CNAME": "docs.example.com\n"}, "set domain")
    (project / "sitegen.yaml").write_text("title: T\npublish:\n  cname: new.example.org\n")
    result = publish(project)
    assert remote_files(remote)["CNAME"] == b"new.example.org\n"
    assert ("M", "CNAME") in [(c.status, c.path) for c in result.changes]
    publish(project, cname="flag.example.net")
    assert remote_files(remote)["CNAME"] == b"flag.example.net\n"


def test_pb01_keep_cname_false_removes_it(project: Path, remote: Path, tmp_path: Path):
    push_hotfix(tmp_path, remote, {"CNAME": "docs.example.com\n"}, "set domain")
    (project / "sitegen.yaml").write_text("title: T\npublish:\n  keep_cname: false\n")
    result = publish(project)
    assert "CNAME" not in remote_files(remote)
    assert ("D", "CNAME") in [(c.status, c.path) for c in result.changes]


def test_pb01_bad_cname_flag_is_refused(project: Path, remote: Path):
    with pytest.raises(EnvironmentProblem) as err:
        publish(project, cname="evil.com\nwww")
    (d,) = err.value.diagnostics
    assert d.format() == "error[publish-cname]: --cname 'evil.com\\nwww': must be a bare domain name such as docs.example.com"
    assert remote_head(remote) is None


# --- PB-02: empty or incomplete output -----------------------------------------------------


def _refusal(project: Path, remote: Path, **kw) -> SitegenError:
    """Publish must fail and leave the remote branch exactly as it was (P)."""
    head = remote_head(remote)
    local = subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/heads/gh-pages"], cwd=project, capture_output=True, text=True).stdout
    with pytest.raises(SitegenError) as err:
        publish(project, **kw)
    assert remote_head(remote) == head
    assert subprocess.run(["git", "rev-parse", "-q", "--verify", "refs/heads/gh-pages"], cwd=project, capture_output=True, text=True).stdout == local
    return err.value


def _messages(exc: SitegenError) -> list[str]:
    return [d.format() for d in exc.diagnostics]


def test_pb02_empty_output(project: Path, remote: Path, tmp_path: Path):
    push_hotfix(tmp_path, remote, {"index.html": "live site"}, "live")
    for p in sorted((project / "output").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    err = _refusal(project, remote)
    assert _messages(err) == ["output: error[publish-incomplete]: refusing to publish: output/ is empty; run `sitegen build`"]
    assert remote_files(remote)["index.html"] == b"live site"


def test_pb02_missing_output_dir(project: Path, remote: Path):
    import shutil

    shutil.rmtree(project / "output")
    err = _refusal(project, remote)
    assert _messages(err) == ["error[publish-incomplete]: refusing to publish: output/ does not exist (run `sitegen build`)"]


def test_pb02_no_index_html(project: Path, remote: Path):
    (project / "output" / "index.html").unlink()
    err = _refusal(project, remote)
    assert _messages(err) == ["output: error[publish-incomplete]: refusing to publish: output/ is incomplete (no index.html); run `sitegen build`"]


def test_pb02_no_manifest_means_a_failed_or_missing_build(project: Path, remote: Path):
    (project / "output" / MANIFEST).unlink()
    err = _refusal(project, remote)
    (msg,) = _messages(err)
    assert msg.startswith(f"output/{MANIFEST}: error[publish-incomplete]: refusing to publish: output/ is empty or incomplete")
    assert "no build manifest" in msg


def test_pb02_output_changed_after_the_build(project: Path, remote: Path):
    (project / "output" / "index.html").write_text("edited by hand")
    (project / "output" / "stray.html").write_text("not built")
    (project / "output" / "reports" / "a" / "index.html").unlink()
    (msg,) = _messages(_refusal(project, remote))
    assert "is empty or incomplete" in msg
    assert "1 missing: reports/a/index.html" in msg
    assert "1 not from the build: stray.html" in msg
    assert "1 changed since the build: index.html" in msg


# --- PB-03: the remote moved ---------------------------------------------------------------


def test_pb03_someone_elses_commit_survives(project: Path, remote: Path, tmp_path: Path):
    publish(project)
    hotfix = push_hotfix(tmp_path, remote, {"hotfix.txt": "urgent\n"}, "hotfix")
    result = publish(project)
    assert result.parent == hotfix
    assert git(remote, "rev-parse", "gh-pages^") == hotfix
    assert git(remote, "rev-list", "--count", "gh-pages") == "3"
    # The hotfix file is replaced by a normal commit, never orphaned: it stays in history.
    assert ("D", "hotfix.txt") in [(c.status, c.path) for c in result.changes]
    assert git(remote, "show", f"{hotfix}:hotfix.txt") == "urgent"


def test_pb03_push_rejected_by_the_remote_shows_git_stderr(project: Path, remote: Path):
    publish(project)
    head = remote_head(remote)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'gh-pages is frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    write_output(project, {**SITE, "index.html": "v2"})
    err = _refusal(project, remote)
    assert isinstance(err, EnvironmentProblem)
    (d,) = err.diagnostics
    assert d.code == "publish-push"
    assert "push to origin/gh-pages was rejected" in d.message
    assert "local gh-pages is unchanged" in d.message
    assert "gh-pages is frozen for the release" in d.message  # git's stderr, with the hook's words
    assert git(project, "rev-parse", "gh-pages") == head


def test_pb03_race_between_fetch_and_push_is_rejected_not_forced(project: Path, remote: Path, tmp_path: Path):
    """A real race: the pre-push hook lets someone else push after our fetch; our push must fail."""
    publish(project)
    head = remote_head(remote)
    racer = second_clone(tmp_path, remote, "racer")
    git(racer, "switch", "-q", "gh-pages")
    write_files(racer, {"race.txt": "mine\n"})
    git(racer, "add", ".")
    git(racer, "commit", "-q", "-m", "racing commit")
    hook = project / ".git" / "hooks" / "pre-push"
    hook.write_text(
        "#!/bin/sh\nunset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n"
        f"git -C '{racer}' push -q origin gh-pages >/dev/null 2>&1\nexit 0\n"
    )
    hook.chmod(0o755)
    write_output(project, {**SITE, "index.html": "v2"})
    with pytest.raises(EnvironmentProblem) as err:
        publish(project)
    racing = git(racer, "rev-parse", "HEAD")
    assert remote_head(remote) == racing != head  # the racer's commit is there, not overwritten
    # git's own verdict is shown: the remote refused to move gh-pages from the head we fetched.
    (d,) = err.value.diagnostics
    assert d.message.startswith("push to origin/gh-pages was rejected; nothing was published and local gh-pages is unchanged.")
    assert "refs/heads/gh-pages\t[remote rejected]" in d.message or "[rejected]" in d.message
    assert git(project, "rev-parse", "gh-pages") == head
    hook.unlink()
    result = publish(project)  # the next publish builds on the racer's commit
    assert result.parent == racing


def test_pb03_force_replaces_the_branch_and_names_what_is_lost(project: Path, remote: Path, tmp_path: Path):
    publish(project)
    push_hotfix(tmp_path, remote, {"hotfix.txt": "urgent\n", "CNAME": "docs.example.com\n"}, "hotfix by alice")
    result = publish(project, force=True)
    assert result.pushed and result.parent is None
    assert git(remote, "rev-list", "--count", "gh-pages") == "1"
    assert result.lost_count == 2
    assert any("hotfix by alice" in line for line in result.lost)
    text = "\n".join(result.summary())
    assert "--force: 2 commit(s) on origin/gh-pages will no longer be on the branch" in text
    assert "lost " in text and "hotfix by alice" in text
    assert remote_files(remote)["CNAME"] == b"docs.example.com\n"  # the domain still survives --force


def test_pb03_force_dry_run_shows_the_loss_and_pushes_nothing(project: Path, remote: Path, tmp_path: Path):
    hotfix = push_hotfix(tmp_path, remote, {"index.html": "x"}, "precious")
    result = publish(project, force=True, dry_run=True)
    assert result.lost_count == 1 and "precious" in result.lost[0]
    assert remote_head(remote) == hotfix


def test_pb03_force_on_a_new_branch_loses_nothing(project: Path, remote: Path):
    result = publish(project, force=True)
    assert result.pushed and result.lost_count == 0 and result.lost == []
    assert git(remote, "rev-list", "--count", "gh-pages") == "1"
    assert not any("--force" in line for line in result.summary())


def test_pb03_unpushed_local_commits_are_not_dropped_silently(project: Path, remote: Path):
    publish(project)
    # A local commit on gh-pages that was never pushed (made with plumbing, like any tool would).
    tree = git(project, "rev-parse", "gh-pages^{tree}")
    local = git(project, "commit-tree", tree, "-p", "gh-pages", "-m", "local tweak")
    git(project, "update-ref", "refs/heads/gh-pages", local)
    err = _refusal(project, remote)
    (d,) = err.diagnostics
    assert d.code == "publish-diverged"
    assert "local branch gh-pages has 1 commit(s) that are not on origin/gh-pages" in d.message
    assert "local tweak" in d.message and "--force" in d.message


# --- PB-04: secrets and symlinks -----------------------------------------------------------


def test_pb04_symlinks_dotfiles_and_keys_are_refused_all_at_once(project: Path, remote: Path, tmp_path: Path):
    secret = tmp_path / "x" / "secret"
    secret.parent.mkdir()
    secret.write_text("TOKEN=hunter2\n")
    out = project / "output"
    extra = {
        ".env": "AWS_SECRET=1\n",
        "key.pem": "-----BEGIN PRIVATE KEY-----\n",
        "ssh/id_rsa": "x",
        "certs/server.KEY": "x",
        "notes.txt": "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n",
        ".git/config": "[core]\n",
        "assets/.DS_Store": "x",
    }
    write_output(project, {**SITE, **extra})
    (out / "leak.txt").symlink_to(secret)
    (out / "linkdir").symlink_to(tmp_path / "x", target_is_directory=True)
    err = _refusal(project, remote)
    msgs = _messages(err)
    assert "output/leak.txt: error[publish-symlink]: refusing to publish symlink output/leak.txt" in msgs[0] or any(
        m.startswith("output/leak.txt: error[publish-symlink]: refusing to publish symlink output/leak.txt") for m in msgs
    )
    expected = {
        "output/leak.txt": "publish-symlink",
        "output/linkdir": "publish-symlink",
        "output/.env": "publish-secret",
        "output/.git": "publish-secret",
        "output/assets/.DS_Store": "publish-secret",
        "output/key.pem": "publish-secret",
        "output/ssh/id_rsa": "publish-secret",
        "output/certs/server.KEY": "publish-secret",
        "output/notes.txt": "publish-secret",
    }
    got = {d.location.path: d.code for d in err.diagnostics}
    assert got == expected
    for d in err.diagnostics:
        if d.code == "publish-secret":
            assert f"refusing to publish hidden or key file {d.location.path}" in d.message
    assert remote_head(remote) is None
    # Nothing of the secret reached the object store either.
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=b"TOKEN=hunter2\n", capture_output=True, cwd=project).stdout.decode().strip()
    assert subprocess.run(["git", "cat-file", "-e", blob], cwd=project).returncode != 0


# --- PB-05: environment errors -------------------------------------------------------------


def _env_error(project: Path, remote: Path | None = None) -> str:
    with pytest.raises(EnvironmentProblem) as err:
        publish(project)
    if remote is not None:
        assert remote_head(remote) is None
    assert err.value.exit_code == 2
    (d,) = err.value.diagnostics
    return d.message


def test_pb05_not_a_git_repository(tmp_path: Path):
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "sitegen.yaml").write_text("title: T\n")
    write_output(proj, SITE)
    msg = _env_error(proj)
    assert msg.startswith(f"not a git repository: {proj.resolve()}")


def test_pb05_no_such_remote(project: Path, remote: Path):
    git(project, "remote", "remove", "origin")
    git(project, "remote", "add", "upstream", str(remote))
    assert _env_error(project, remote) == "no such remote 'origin' (remotes: upstream)"


def test_pb05_remote_name_cannot_smuggle_git_options(project: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    with pytest.raises(EnvironmentProblem) as err:
        publish(project, remote=f"--upload-pack=touch {marker}")
    assert err.value.diagnostics[0].message.startswith("no such remote '--upload-pack=")
    assert not marker.exists()


def test_pb05_unreachable_remote(project: Path, tmp_path: Path):
    git(project, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    msg = _env_error(project)
    assert msg.startswith("cannot reach remote 'origin': ")
    assert "does not appear to be a git repository" in msg


def test_pb05_detached_head(project: Path, remote: Path):
    git(project, "switch", "-q", "--detach")
    assert _env_error(project, remote).startswith("HEAD is detached")


def test_pb05_no_commits_yet(tmp_path: Path, remote: Path):
    proj = tmp_path / "fresh"
    proj.mkdir()
    git(proj, "init", "-q")
    (proj / "sitegen.yaml").write_text("title: T\n")
    write_output(proj, SITE)
    assert _env_error(proj) == "refs/heads/main has no commits yet: commit the site's sources before publishing"


def test_pb05_dirty_gh_pages_worktree(project: Path, remote: Path, tmp_path: Path):
    publish(project)
    head = remote_head(remote)
    wt = tmp_path / "pages-wt"
    git(project, "worktree", "add", "-q", str(wt), "gh-pages")
    (wt / "index.html").write_text("half-done edit")
    write_output(project, {**SITE, "index.html": "v2"})
    with pytest.raises(EnvironmentProblem) as err:
        publish(project)
    assert err.value.diagnostics[0].message == (
        f"gh-pages is checked out at {wt} with uncommitted changes: commit, stash or remove that worktree first"
    )
    assert remote_head(remote) == head
    assert (wt / "index.html").read_text() == "half-done edit"


def test_pb05_clean_gh_pages_worktree_is_left_alone(project: Path, remote: Path, tmp_path: Path):
    publish(project)
    wt = tmp_path / "pages-wt"
    git(project, "worktree", "add", "-q", str(wt), "gh-pages")
    old_local = git(project, "rev-parse", "gh-pages")
    write_output(project, {**SITE, "index.html": "v2"})
    result = publish(project)
    assert remote_head(remote) == result.commit != old_local
    assert git(project, "rev-parse", "gh-pages") == old_local  # a checked-out branch is not moved under it
    assert git(wt, "status", "--porcelain") == ""
    assert any("checked out at" in n for n in result.notes)


def test_pb05_on_the_gh_pages_branch_itself(project: Path, remote: Path):
    publish(project)
    git(project, "switch", "-q", "gh-pages")
    (project / "sitegen.yaml").write_text("title: T\n")
    write_output(project, SITE)
    msg = _env_error(project)
    assert msg == "the current branch is gh-pages: switch to the branch that holds the site's sources"


def test_pb05_invalid_branch_name(project: Path, remote: Path):
    with pytest.raises(EnvironmentProblem) as err:
        publish(project, branch="bad..name")
    assert err.value.diagnostics[0].message == "not a valid branch name: 'bad..name'"


def test_pb05_history_grows_by_exactly_one_commit_per_publish(project: Path, remote: Path, tmp_path: Path):
    push_hotfix(tmp_path, remote, {"index.html": "1"}, "one")
    push_hotfix(tmp_path, remote, {"index.html": "2"}, "two")
    before = int(git(remote, "rev-list", "--count", "gh-pages"))
    old = remote_head(remote)
    result = publish(project)
    assert int(git(remote, "rev-list", "--count", "gh-pages")) == before + 1
    assert git(remote, "rev-parse", "gh-pages^") == old == result.parent
    assert git(remote, "rev-list", "--parents", "-1", "gh-pages").split()[1:] == [old]


# --- the command line: build first, then publish -------------------------------------------

CLI_SITE = {
    "sitegen.yaml": "title: CLI site\nlanguage: en\ndiagrams:\n  enabled: false\n",
    ".gitignore": "output/\n.sitegen-cache/\n.sitegen.lock\n",
    "content/reports/a.md": "---\ntitle: Report A\ndate: 2024-05-01\n---\n\nHello **world**.\n",
}


@pytest.fixture
def cli_project(tmp_path: Path, remote: Path) -> Path:
    proj = tmp_path / "cli-site"
    proj.mkdir()
    git(proj, "init", "-q")
    write_files(proj, CLI_SITE)
    git(proj, "add", ".")
    git(proj, "commit", "-q", "-m", "sources")
    git(proj, "remote", "add", "origin", str(remote))
    return proj


def test_cli_publish_builds_then_pushes(cli, cli_project: Path, remote: Path):
    res = cli("-C", str(cli_project), "publish")
    assert res.exit_code == 0, res.output
    assert "published" in res.stdout and "to origin/gh-pages" in res.stdout
    files = remote_files(remote)
    assert {"index.html", "reports/a/index.html", ".nojekyll", "404.html"} <= set(files)
    assert any(p.startswith("static/") for p in files)
    assert b"Hello <strong>world</strong>" in files["reports/a/index.html"]
    assert git(cli_project, "status", "--porcelain") == ""


def test_cli_publish_dry_run_lists_files_and_pushes_nothing(cli, cli_project: Path, remote: Path):
    res = cli("-C", str(cli_project), "publish", "--dry-run")
    assert res.exit_code == 0, res.output
    assert "A index.html" in res.stdout.splitlines()
    assert "A .nojekyll" in res.stdout.splitlines()
    assert "nothing pushed" in res.stdout
    assert remote_head(remote) is None


def test_cli_publish_refuses_a_failing_build(cli, cli_project: Path, remote: Path):
    cli("-C", str(cli_project), "publish")
    head = remote_head(remote)
    write_files(cli_project, {"content/reports/bad.md": "---\ntitle: Bad\ndate: someday\n---\nbody\n"})
    res = cli("-C", str(cli_project), "publish")
    assert res.exit_code == 1
    assert "content/reports/bad.md:3:7: error[schema]: date:" in res.stderr
    assert "Traceback" not in res.output
    assert remote_head(remote) == head


def test_cli_publish_refuses_a_build_with_a_broken_link(cli, cli_project: Path, remote: Path):
    assert cli("-C", str(cli_project), "publish").exit_code == 0
    head, published = remote_head(remote), remote_files(remote)
    write_files(cli_project, {"content/reports/b.md": "---\ntitle: B\n---\n\nSee [gone](../gone/index.html).\n"})
    res = cli("-C", str(cli_project), "publish")
    assert res.exit_code == 1
    assert ("content/reports/b.md:5: error[link]: broken link '../gone/index.html': "
            "no page or file reports/gone/index.html in the site") in res.stderr
    assert "Traceback" not in res.output
    assert remote_head(remote) == head and remote_files(remote) == published


def test_cli_publish_strict_refuses_warnings(cli, cli_project: Path, remote: Path):
    write_files(cli_project, {"content/reports/b.md": "---\ntitle: B\n---\nhi <script>alert(1)</script>\n"})
    res = cli("-C", str(cli_project), "publish", "--strict")
    assert res.exit_code == 1
    assert "content/reports/b.md:4: warning[raw-html]" in res.stderr
    assert remote_head(remote) is None
    res = cli("-C", str(cli_project), "publish")
    assert res.exit_code == 0, res.output
    assert "warning[raw-html]" in res.stderr
    assert remote_head(remote) is not None


def test_cli_refusals_print_plainly_without_traceback(tmp_path: Path, cli_project: Path, remote: Path):
    from conftest import run_sitegen

    plain = tmp_path / "plain"
    write_files(plain, CLI_SITE)
    proc = run_sitegen("-C", str(plain), "publish")
    assert proc.returncode == 2
    assert f"error[publish-git]: not a git repository: {plain.resolve()}" in proc.stderr
    assert "Traceback" not in proc.stderr
    git(cli_project, "remote", "set-url", "origin", str(tmp_path / "missing.git"))
    proc = run_sitegen("-C", str(cli_project), "publish")
    assert proc.returncode == 2
    assert "error[publish-remote]: cannot reach remote 'origin'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "missing.git").exists()


# --- the published tree works under a sub-path (https://user.github.io/repo/) -------------

REPO_ROOT = Path(__file__).resolve().parents[1]


class _LinkParser:
    """Every href/src/srcset of an HTML page (html.parser, so nothing is executed)."""

    ATTRS = {"href", "src", "poster", "data"}

    def __init__(self) -> None:
        from html.parser import HTMLParser

        self.links: list[str] = []
        outer = self

        class Parser(HTMLParser):
            def handle_starttag(self, tag, attrs):
                for name, value in attrs:
                    if value is None:
                        continue
                    if name in outer.ATTRS:
                        outer.links.append(value)
                    elif name == "srcset":
                        outer.links.extend(part.strip().split(" ")[0] for part in value.split(",") if part.strip())

        self.parser = Parser(convert_charrefs=True)

    def feed(self, text: str) -> list[str]:
        self.parser.feed(text)
        self.parser.close()
        return self.links


def crawl(base: str, start: str, limit: int = 5000) -> tuple[set[str], list[tuple[str, str, str]]]:
    """Follow every internal link and asset from start; return the URLs seen and the broken ones."""
    import re
    import urllib.error
    import urllib.request
    from urllib.parse import quote, urldefrag, urljoin, urlsplit

    host = urlsplit(base).netloc
    seen, broken, todo = {start}, [], [(start, "(start)")]
    while todo:
        assert len(seen) <= limit, "crawl did not converge"
        url, referrer = todo.pop()
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                body = resp.read()
                kind = resp.headers.get_content_type()
        except urllib.error.HTTPError as exc:
            broken.append((referrer, url, str(exc.code)))
            continue
        if kind == "text/html":
            found = _LinkParser().feed(body.decode("utf-8", "replace"))
        elif kind == "text/css":
            found = re.findall(r"url\(\s*['\"]?([^'\")]+)", body.decode("utf-8", "replace"))
        else:
            continue
        for link in found:
            link = link.strip()
            if not link or link.startswith(("#", "mailto:", "data:", "tel:", "javascript:")):
                continue
            target = urldefrag(urljoin(url, link))[0].split("?")[0]
            # As a browser does: non-ASCII paths (tags/订阅制/) travel percent-encoded.
            target = quote(target, safe="/%:@!$&'()*+,;=-._~")
            parts = urlsplit(target)
            if parts.scheme not in ("http", "https") or parts.netloc != host:
                continue  # an external link: not ours to check offline
            if not parts.path.startswith("/repo/"):
                broken.append((url, link, "escapes /repo/ (depends on the domain root)"))
                continue
            if target not in seen:
                seen.add(target)
                todo.append((target, url))
    return seen, broken


@contextlib.contextmanager
def serve(directory: Path):
    """http.server on 127.0.0.1 in a thread; yields the base URL."""
    import threading
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_crawler_finds_missing_and_root_relative_links(tmp_path: Path):
    """The crawl below is only worth something if it fails on the mistakes it is meant to catch."""
    write_files(tmp_path / "repo", {
        "index.html": '<link href="/static/app.css" rel="stylesheet"><a href="a/">a</a><img src="missing.png">'
                      '<a href="https://example.com/x">ext</a><a href="#top">top</a>',
        "a/index.html": '<a href="../index.html#x">home</a><link rel="stylesheet" href="../s.css">',
        "s.css": "body { background: url('../bg.png') }",
    })
    with serve(tmp_path) as base:
        seen, broken = crawl(base, f"{base}/repo/")
    assert {(link, why) for _page, link, why in broken} == {
        ("/static/app.css", "escapes /repo/ (depends on the domain root)"),
        ("../bg.png", "escapes /repo/ (depends on the domain root)"),
        (f"{base}/repo/missing.png", "404"),
    }
    assert f"{base}/repo/a/" in seen and f"{base}/repo/s.css" in seen


@pytest.mark.slow
def test_published_sample_site_has_no_broken_links_under_a_sub_path(cli, tmp_path: Path, remote: Path):
    """Publish the sample site, check gh-pages out under repo/, serve it, crawl everything from /repo/."""
    import shutil
    from urllib.parse import quote

    proj = tmp_path / "sample"
    proj.mkdir()
    shutil.copy(REPO_ROOT / "sitegen.yaml", proj / "sitegen.yaml")
    shutil.copytree(REPO_ROOT / "content", proj / "content")
    (proj / ".gitignore").write_text("output/\n.sitegen-cache/\n.sitegen.lock\n")
    git(proj, "init", "-q")
    git(proj, "add", ".")
    git(proj, "commit", "-q", "-m", "sample site")
    git(proj, "remote", "add", "origin", str(remote))
    res = cli("-C", str(proj), "publish")
    assert res.exit_code == 0, res.output

    served = tmp_path / "www"
    (served / "repo").mkdir(parents=True)
    archive = subprocess.run(["git", "archive", "gh-pages"], cwd=remote, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(served / "repo")], input=archive, check=True)
    assert (served / "repo" / ".nojekyll").is_file()

    with serve(served) as base:
        seen, broken = crawl(base, f"{base}/repo/")
    assert broken == []
    pages = {u for u in seen if u.endswith((".html", "/"))}
    # The crawl really reached the whole site: every report and start-up page, and the assets.
    for md in (proj / "content" / "reports").glob("*.md"):
        assert any(f"/repo/reports/{quote(md.stem)}/" in u for u in seen), md.stem
    for profile in (proj / "content" / "startups").glob("*.yaml"):
        assert any(f"/repo/startups/{quote(profile.stem)}/" in u for u in seen), profile.stem
    assert any(u.endswith("/repo/static/style.css") for u in seen)
    assert len(pages) >= 10


# --- TP-07: secrets under templates/ never reach the branch -------------------------------------------


def test_tp07_secrets_under_templates_are_never_published(make_project, remote: Path):
    from generator.build import build

    proj = make_project({
        ".gitignore": "output/\n",
        "templates/static/own.css": "body{}",
        "templates/static/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nSITEGEN-SECRET\n",
        "templates/static/.env": "TOKEN=SITEGEN-SECRET\n",
    })
    git(proj, "init", "-q")
    git(proj, "add", ".")
    git(proj, "commit", "-q", "-m", "sources")
    git(proj, "remote", "add", "origin", str(remote))
    result = build(proj)
    warned = [d.format() for d in result.diagnostics.warnings]
    assert "templates/static/id_rsa: warning[hidden]: ignored hidden or secret file (never published)" in warned
    publish(proj)
    files = remote_files(remote)
    assert files["static/own.css"] == b"body{}"
    assert not {Path(n).name for n in files} & {"id_rsa", ".env"}
    assert not any(b"SITEGEN-SECRET" in data for data in files.values())

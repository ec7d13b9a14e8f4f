"""The content rules for every input tree (SECURITY-CASES TP-07): links out of the project, hidden and secret names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import tree_hash

from generator.paths import collect_tree, is_private_name, private_part


@pytest.mark.parametrize("name", [".env", ".env.local", ".git", "id_rsa", "id_ed25519", "ID_ECDSA", "server.pem", "tls.key",
                                  "cert.p12", "store.pfx", "vault.kdbx", "app.jks", "x.keystore", "putty.ppk", "api.secret"])
def test_hidden_and_secret_names_are_private(name):
    assert is_private_name(name)


@pytest.mark.parametrize("name", ["style.css", "identity.png", "id.svg", "keynote.pdf", "robots.txt", "_macros.html", "envelope.svg"])
def test_ordinary_names_are_not(name):
    assert not is_private_name(name)


def test_private_part_finds_a_hidden_folder_anywhere_and_a_secret_file_name():
    assert private_part("static/.git/config") == ".git"
    assert private_part("print/keys/id_rsa") == "id_rsa"
    assert private_part("static/css/site.css") is None
    assert private_part("startups/id_software/index.html") is None  # a slug, not a key: only file names are judged


def test_collect_tree_leaves_out_links_out_of_the_project_and_private_files(tmp_path):
    project = tmp_path / "site"
    static = project / "templates" / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "a.css").write_text("a")
    (static / "id_rsa").write_text("KEY")
    (project / ".env").write_text("TOKEN=1")
    (static / "leak.txt").symlink_to("/etc/passwd")
    (static / "env.txt").symlink_to(project / ".env")  # inside the project, but to a secret
    (static / "b.css").symlink_to(static / "css" / "a.css")  # inside the project: allowed
    diags: list = []
    files = collect_tree(static, project, diags)
    assert [p.relative_to(static).as_posix() for p in files] == ["b.css", "css/a.css"]
    shown = sorted(d.format() for d in diags)
    assert shown == [
        "templates/static/env.txt: warning[hidden]: ignored link to a hidden or secret file: "
        f"templates/static/env.txt -> {project / '.env'}",
        "templates/static/id_rsa: warning[hidden]: ignored hidden or secret file (never published)",
        "templates/static/leak.txt: error[symlink]: symlink leads outside the project: templates/static/leak.txt -> /etc/passwd",
    ]


# --- TP-07 through a build ------------------------------------------------------------------------


def _output_names(out: Path) -> set[str]:
    return {p.name for p in out.rglob("*")}


def test_tp07_links_out_of_templates_fail_the_build_and_keep_the_output(cli, make_project):
    project = make_project({"templates/static/own.css": "body{}"})
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.stderr
    before = tree_hash(project / "output")
    os.symlink("/etc/passwd", project / "templates/static/leak.txt")
    os.symlink("/etc/passwd", project / "templates/robots.txt")  # a template replaced by a link
    (project / "templates/static/id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (project / "templates/static/.env").write_text("TOKEN=hunter2\n")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    lines = res.stderr.splitlines()
    assert "templates/static/leak.txt: error[symlink]: symlink leads outside the project: templates/static/leak.txt -> /etc/passwd" in lines
    assert "templates/robots.txt: error[symlink]: symlink leads outside the project: templates/robots.txt -> /etc/passwd" in lines
    assert lines.count("templates/robots.txt: error[symlink]: symlink leads outside the project: templates/robots.txt -> /etc/passwd") == 1
    assert "templates/static/id_rsa: warning[hidden]: ignored hidden or secret file (never published)" in lines
    assert "templates/static/.env: warning[hidden]: ignored hidden or secret file (never published)" in lines
    assert "Traceback" not in res.output
    assert tree_hash(project / "output") == before
    assert "root:" not in (project / "output/robots.txt").read_text()


def test_tp07_secrets_under_templates_are_never_copied_and_named_once(cli, make_project):
    project = make_project({
        "templates/static/own.css": "body{}",
        "templates/static/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
        "templates/static/.env": "TOKEN=hunter2\n",
        "templates/static/keys/server.pem": "KEY",
    })
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.stderr
    out = project / "output"
    assert (out / "static/own.css").read_text() == "body{}"
    assert not _output_names(out) & {"id_rsa", ".env", "server.pem"}
    lines = res.stderr.splitlines()
    for rel in ("templates/static/id_rsa", "templates/static/.env", "templates/static/keys/server.pem"):
        assert lines.count(f"{rel}: warning[hidden]: ignored hidden or secret file (never published)") == 1, res.stderr


def test_tp07_a_template_linked_inside_the_project_still_works(cli, make_project):
    project = make_project({"shared/robots.txt": "User-agent: *\nDisallow: /private/\n"})
    (project / "templates").mkdir()
    os.symlink(project / "shared/robots.txt", project / "templates/robots.txt")
    res = cli("-C", str(project), "build")
    assert res.exit_code == 0, res.stderr
    assert "Disallow: /private/" in (project / "output/robots.txt").read_text()


def test_tp07_a_template_including_a_secret_file_is_refused(cli, make_project):
    project = make_project({
        "templates/robots.txt": "{% include 'id_rsa' %}\n",
        "templates/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    })
    res = cli("-C", str(project), "build")
    assert res.exit_code == 1
    assert "templates/robots.txt:1: error[hidden]: refusing to load a hidden or secret file as a template: id_rsa" in res.stderr.splitlines()
    assert "PRIVATE KEY" not in res.output
    assert not (project / "output").exists() or "PRIVATE KEY" not in (project / "output/robots.txt").read_text()

"""Trust: caches hold data, never code (CA-01, CA-02); untrusted changes build in a sandbox (TP-08).

Payloads that would create a marker file when unpickled, unmarshalled or executed are planted in
every file of a populated cache folder, in a shipped `cache_dir:` and in the user's bytecode cache;
build, check, pdf and serve (real HTTP) run over them and the marker never appears.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import pickle
import shutil
import zlib
from pathlib import Path

import pytest

from generator.incremental.record import STATE_VERSION

from conftest import BASIC_PROFILE, REPO, run_sitegen, tree_hash

from generator.templates import theme_dir

CONFIG = "title: Test Site\nlanguage: en\nsearch: {enabled: false}\n"
REPORT = """\
---
title: First report
date: 2024-05-01
startups: [acme]
---

## 1. Intro

Hello **world**, 你好世界, and $E = mc^2$.

```mermaid
flowchart LR
  A --> B
```
"""


class _RunsCode:
    """Unpickling this runs `open(marker, 'w')`: what a crafted cache file would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def pickle_payload(marker: Path) -> bytes:
    return pickle.dumps((7, _RunsCode(marker), {}), protocol=pickle.HIGHEST_PROTOCOL)


def crc_framed(payload: bytes) -> bytes:
    """The old build-record format: a CRC-32 line, then a pickle."""
    return f"{zlib.crc32(payload):08x}".encode() + b"\n" + payload


def sha_framed(payload: bytes) -> bytes:
    """The cache entry header (sha256 of the payload), valid, in front of a pickle."""
    return hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def bytecode_payload(marker: Path, source: str) -> bytes:
    """A Jinja bytecode file for `source` with a valid checksum, whose code creates the marker."""
    from jinja2.bccache import BytecodeCache, bc_magic

    code = compile(f"open({str(marker)!r}, 'w').write('ran')", "<planted>", "exec")
    return bc_magic + pickle.dumps(BytecodeCache().get_source_checksum(source), 2) + marshal.dumps(code)


def theme_templates() -> list[tuple[str, str, str]]:
    """(name, file name as Jinja's loader gives it, source) of every theme template."""
    theme = theme_dir()
    out = []
    for p in sorted(theme.rglob("*")):
        if p.is_file() and p.suffix in (".html", ".xml", ".txt"):
            rel = p.relative_to(theme).as_posix()
            out.append((rel, os.path.normpath(os.path.join(str(theme), *rel.split("/"))), p.read_text(encoding="utf-8")))
    return out


def plant_bytecode(folder: Path, marker: Path, signed_name: bool) -> None:
    """Jinja bytecode for every theme template: in the old project layout, or in the user's cache
    under the right name with a forged signature."""
    from jinja2.bccache import BytecodeCache

    folder.mkdir(parents=True, exist_ok=True)
    for name, filename, source in theme_templates():
        key = BytecodeCache().get_cache_key(name, filename)
        data = bytecode_payload(marker, source)
        if signed_name:
            (folder / f"{key}.cache").write_bytes(b"\0" * 32 + data)
        else:
            (folder / f"__jinja2_{key}.cache").write_bytes(data)


def poison(cache: Path, marker: Path) -> list[str]:
    """Replace every file under the cache folder by a payload; returns what was planted."""
    planted = []
    payload = pickle_payload(marker)
    files = sorted(p for p in cache.rglob("*") if p.is_file())
    assert files, "the build populated the cache"
    for i, p in enumerate(files):
        rel = p.relative_to(cache).as_posix()
        if rel.startswith("build/"):
            p.write_bytes(crc_framed(payload))  # the old record format, CRC valid
        else:
            p.write_bytes(sha_framed(payload) if i % 2 else payload)
        planted.append(rel)
    (cache / "build").mkdir(exist_ok=True)
    (cache / "build/state.pickle").write_bytes(crc_framed(payload))
    plant_bytecode(cache / "jinja", marker, signed_name=False)
    return planted


def output_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    """The user's cache folder (XDG_CACHE_HOME) of this test, its bytecode signatures forged."""
    folder = tmp_path / "user-cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def sitegen(*args: str, env_cache: Path):
    return run_sitegen(*args, env={"XDG_CACHE_HOME": str(env_cache)}, timeout=600)


def serve_once(project: Path, untrusted: bool = False) -> tuple[int, list[str], object]:
    """One preview over real HTTP: (status of the report page, the log, the build status)."""
    from test_serve import raw

    from generator.commands.serve import Preview, ServeOptions

    logs: list[str] = []
    preview = Preview(project, ServeOptions(port=0, step_ms=20, watch=False, untrusted=untrusted), log=logs.append)
    preview.start()
    try:
        status, _headers, _body = raw(preview.port, "/reports/first/index.html")
        return status, logs, preview.status
    finally:
        preview.close()


def test_ca01_poisoned_cache_runs_nothing_and_is_rebuilt(make_project, tmp_path, user_cache):
    project = make_project({"sitegen.yaml": CONFIG, "content/reports/first.md": REPORT, "content/startups/acme.yaml": BASIC_PROFILE}, basic=False)
    marker = tmp_path / "MARKER"
    cache = project / ".sitegen-cache"
    clean = sitegen("-C", str(project), "build", "--pdf", env_cache=user_cache)
    assert clean.returncode == 0, clean.stderr
    expected = output_files(project / "output")
    assert any(rel.endswith(".pdf") for rel in expected)
    for namespace in ("build/state.json", "build/parsed", "diagrams", "math", "pdf", "fonts"):
        assert (cache / namespace).exists(), namespace
    assert not (cache / "jinja").exists(), "compiled templates are never kept in the project"
    plant_bytecode(user_cache / "sitegen" / "jinja", marker, signed_name=True)

    planted = poison(cache, marker)
    assert any(p.startswith("diagrams/") for p in planted) and any(p.startswith("fonts/") for p in planted)
    res = sitegen("-C", str(project), "build", "--pdf", env_cache=user_cache)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    assert "warning[cache]: build cache entries in .sitegen-cache were damaged or not written by sitegen, " \
           "so they were ignored and are rebuilt: build/state.json" in res.stderr
    diagram = next(p for p in planted if p.startswith("diagrams/"))
    assert f"warning[cache]: diagrams cache entry {Path(diagram).name} was corrupt; rebuilt" in res.stderr
    pdf_entry = next(p for p in planted if p.startswith("pdf/"))
    assert f"warning[cache]: pdf cache entry {Path(pdf_entry).name} was corrupt; rebuilt" in res.stderr
    assert output_files(project / "output") == expected
    # Rebuilt: the next build reads good entries and warns about nothing.
    again = sitegen("-C", str(project), "build", "--pdf", env_cache=user_cache)
    assert again.returncode == 0 and "warning[cache]" not in again.stderr, again.stderr

    poison(cache, marker)
    res = sitegen("-C", str(project), "check", env_cache=user_cache)
    assert not marker.exists()
    assert res.returncode == 0, res.stdout + res.stderr
    assert "warning[cache]: build cache entries" in res.stdout

    poison(cache, marker)
    shutil.rmtree(project / "output" / "pdf")
    res = sitegen("-C", str(project), "pdf", "--all", "--book", env_cache=user_cache)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    assert f"warning[cache]: pdf cache entry {Path(pdf_entry).name} was corrupt; rebuilt" in res.stderr
    assert "warning[cache]: fonts cache entry" in res.stderr
    assert output_files(project / "output") == expected

    poison(cache, marker)
    status, logs, build = serve_once(project)
    assert status == 200 and build.ok, logs
    assert not marker.exists()
    assert any("warning[cache]: build cache entries" in line for line in logs), logs


def test_ca02_shipped_cache_dir_runs_nothing(make_project, tmp_path, user_cache):
    """A fresh clone whose sitegen.yaml points cache_dir at a committed folder of payloads and links."""
    marker = tmp_path / "MARKER"
    victim = tmp_path / "victim"
    (victim / "ab").mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    (victim / "ab" / "keep.txt").write_text("mine too")
    payload = pickle_payload(marker)
    project = make_project({"sitegen.yaml": CONFIG + "cache_dir: data\n", "content/reports/first.md": REPORT,
                            "content/startups/acme.yaml": BASIC_PROFILE,
                            "data/build/state.json": crc_framed(payload),
                            "data/build/state.pickle": crc_framed(payload),
                            "data/diagrams/00/" + "0" * 64: sha_framed(payload),
                            "data/pdf/00/" + "0" * 64: payload}, basic=False)
    plant_bytecode(project / "data" / "jinja", marker, signed_name=False)
    (project / "data" / "trash").symlink_to(victim)  # a build must never empty a folder through a link
    (project / "data" / "build" / "parsed").symlink_to(victim)

    reference = make_project({"sitegen.yaml": CONFIG, "content/reports/first.md": REPORT,
                              "content/startups/acme.yaml": BASIC_PROFILE}, basic=False, name="reference")
    assert sitegen("-C", str(reference), "build", "--pdf", env_cache=user_cache).returncode == 0
    for args in (("build", "--pdf"), ("build", "--pdf"), ("check",), ("pdf", "--all")):
        res = sitegen("-C", str(project), *args, env_cache=user_cache)
        assert res.returncode == 0, res.stdout + res.stderr
        assert not marker.exists()
    status, logs, build = serve_once(project)
    assert status == 200 and build.ok, logs
    assert not marker.exists()
    assert output_files(project / "output") == output_files(reference / "output")
    assert (victim / "keep.txt").read_text() == "mine" and (victim / "ab" / "keep.txt").read_text() == "mine too"


def test_ca02_first_build_names_the_foreign_record(make_project, tmp_path, user_cache):
    marker = tmp_path / "MARKER"
    project = make_project({"sitegen.yaml": CONFIG + "cache_dir: data\n",
                            "data/build/state.json": crc_framed(pickle_payload(marker))})
    res = sitegen("-C", str(project), "build", env_cache=user_cache)
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    assert "warning[cache]: build cache entries in data were damaged or not written by sitegen, " \
           "so they were ignored and are rebuilt: build/state.json" in res.stderr
    assert json.loads((project / "data/build/state.json").read_text())["format"] == "sitegen-build-record"


@pytest.mark.parametrize("value", [
    {"format": "sitegen-build-record", "version": STATE_VERSION, "state": {"fingerprint": 5}, "index": {}},
    {"format": "sitegen-build-record", "version": STATE_VERSION, "state": [], "index": []},
    [1, 2, 3],
    "[" * 100_000,
])
def test_a_record_of_the_wrong_shape_is_corrupt_not_a_crash(tmp_path, value):
    from generator.incremental.record import load_state, save_state, state_path

    root = tmp_path / "cache"
    state_path(root).parent.mkdir(parents=True)
    state_path(root).write_text(value if isinstance(value, str) else json.dumps(value))
    state = load_state(root)
    assert state.corrupt == ["build/state.json"] and not state.pages
    save_state(root, state)  # a damaged record is replaced by a good one
    assert load_state(root).corrupt == []


def test_the_record_round_trips_through_json(make_project, user_cache):
    """What a build records reads back equal, field by field, and is plain JSON on disk."""
    from generator.build import build
    from generator.incremental.record import load_parsed, load_state, state_path

    project = make_project({"content/reports/second.md": REPORT.replace("First report", "Second")})
    assert not build(project).diagnostics.errors
    state = load_state(project / ".sitegen-cache")
    load_parsed(state)
    assert state.corrupt == [] and state.parsed and state.pages and state.results and state.loaded
    again = load_state(project / ".sitegen-cache")
    load_parsed(again)
    assert again == state
    assert json.loads(state_path(project / ".sitegen-cache").read_text())["version"] == STATE_VERSION
    for blob in (project / ".sitegen-cache/build/parsed").rglob("*"):
        if blob.is_file():
            assert json.loads(blob.read_text())["format"] == "sitegen-parsed-report"


def test_a_parse_moved_to_another_report_is_not_used(make_project, user_cache):
    """Each parsed-report file names its source and hash: a swapped file is foreign and re-parsed."""
    from generator.build import build
    from generator.incremental.record import load_parsed, load_state

    project = make_project({"content/reports/second.md": REPORT.replace("First report", "Second")})
    build(project)
    blobs = sorted(p for p in (project / ".sitegen-cache/build/parsed").rglob("*") if p.is_file())
    assert len(blobs) == 2
    one, two = (p.read_bytes() for p in blobs)
    blobs[0].write_bytes(two)
    blobs[1].write_bytes(one)
    state = load_state(project / ".sitegen-cache")
    load_parsed(state)
    assert sorted(state.corrupt) == sorted(f"build/parsed/{p.parent.name}/{p.name}" for p in blobs)
    assert state.parsed == {}


def test_user_bytecode_key_is_private_and_a_foreign_key_disables_the_cache(tmp_path, user_cache):
    from generator.templates import SignedBytecodeCache

    cache = SignedBytecodeCache.for_user()
    key = user_cache / "sitegen" / "bytecode.key"
    assert cache is not None and key.stat().st_mode & 0o777 == 0o600
    key.chmod(0o644)  # readable by others: anyone could sign code with it
    assert SignedBytecodeCache.for_user() is None


# --- TP-08: untrusted builds ----------------------------------------------------------------------

ESCAPES = [
    ("{{ cycler.__init__.__globals__.os.system('touch MARKER') }}", "access to attribute '__init__' of 'type' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "access to attribute '__class__' of 'str' object is unsafe"),
    ("{{ self._TemplateReference__context }}", "access to attribute '_TemplateReference__context' of 'TemplateReference' object is unsafe"),
]


def _copy_sample(dest: Path) -> Path:
    dest.mkdir(parents=True)
    shutil.copy2(REPO / "sitegen.yaml", dest / "sitegen.yaml")
    for name in ("content", "templates"):
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, dest / name)
    return dest


def test_untrusted_build_of_the_sample_site_gives_the_same_html(tmp_path, user_cache):
    project = _copy_sample(tmp_path / "sample")
    trusted = sitegen("-C", str(project), "build", "--no-pdf", "--out", "trusted", env_cache=user_cache)
    assert trusted.returncode == 0, trusted.stderr
    before = tree_hash(project / ".sitegen-cache")
    untrusted = sitegen("-C", str(project), "build", "--untrusted", "--no-pdf", "--out", "untrusted", env_cache=user_cache)
    assert untrusted.returncode == 0, untrusted.stderr
    one, two = output_files(project / "trusted"), output_files(project / "untrusted")
    pages = [rel for rel in one if rel.endswith((".html", ".xml", ".css", ".js")) and not rel.startswith("pagefind/")]
    assert len(pages) > 20 and all(one[rel] == two[rel] for rel in pages)
    assert tree_hash(project / ".sitegen-cache") == before, "an untrusted build reads and writes no project cache"


def test_untrusted_config_drops_network_and_shipped_caches(make_project):
    from generator.build import BuildOptions, configure

    project = make_project({"sitegen.yaml": CONFIG + "pdf: {allow_network: [example.org]}\ndraft: {allow_pickle: true}\n"
                                            "assets: {svg_as_is: [content/assets/x.svg]}\n"})
    for options in (BuildOptions(overrides={"untrusted": True}), None):
        if options is None:
            (project / "sitegen.yaml").write_text(CONFIG + "untrusted: true\npdf: {allow_network: [example.org]}\n")
        setup = configure(project, options)
        assert setup.config.untrusted and setup.config.pdf.allow_network == [] and not setup.config.draft.allow_pickle
        assert setup.config.assets.svg_as_is == []
        assert setup.cache_root.is_dir() and project not in setup.cache_root.parents
        scratch = setup.cache_root
        del setup
        import gc

        gc.collect()
        assert not scratch.exists(), "the temporary cache goes with the build"
    trusted = configure(make_project({"sitegen.yaml": CONFIG + "pdf: {allow_network: [example.org]}\n"}, name="t"))
    assert trusted.config.pdf.allow_network == ["example.org"]


@pytest.mark.parametrize("payload,message", ESCAPES)
def test_tp08_sandbox_escapes_fail_under_untrusted(make_project, tmp_path, user_cache, payload, message):
    project = make_project({"sitegen.yaml": CONFIG})
    good = sitegen("-C", str(project), "build", "--untrusted", env_cache=user_cache)
    assert good.returncode == 0, good.stderr
    before = tree_hash(project / "output")
    own = project / "templates" / "report.html"
    own.parent.mkdir()
    own.write_text("<p>first line</p>\n" + payload.replace("MARKER", str(tmp_path / "MARKER")) + "\n")
    where = "templates/report.html:2: error[sandbox]: "
    expected = f"{where}{message} (an untrusted build runs templates in a sandbox)"

    res = sitegen("-C", str(project), "build", "--untrusted", env_cache=user_cache)
    assert res.returncode == 1
    assert expected in res.stderr
    assert "Traceback" not in res.stderr
    assert tree_hash(project / "output") == before
    assert not (tmp_path / "MARKER").exists()

    res = sitegen("-C", str(project), "check", "--untrusted", env_cache=user_cache)
    assert res.returncode == 1 and expected in res.stdout
    assert not (tmp_path / "MARKER").exists()

    status, logs, build = serve_once(project, untrusted=True)
    assert not build.ok and expected in [d.format() for d in build.diagnostics], logs
    assert not (tmp_path / "MARKER").exists()


def test_tp08_print_templates_are_sandboxed_for_pdf_untrusted(make_project, tmp_path, user_cache):
    project = make_project({"sitegen.yaml": CONFIG})
    own = project / "templates" / "print" / "report.html"
    own.parent.mkdir(parents=True)
    own.write_text("<p>x</p>\n" + ESCAPES[0][0].replace("MARKER", str(tmp_path / "MARKER")) + "\n")
    res = sitegen("-C", str(project), "pdf", "--all", "--untrusted", env_cache=user_cache)
    assert res.returncode == 1
    assert f"templates/print/report.html:2: error[sandbox]: {ESCAPES[0][1]}" in res.stderr
    assert not (tmp_path / "MARKER").exists()


def test_tp08_trusted_builds_keep_trusted_templates(make_project, user_cache):
    """Without --untrusted the templates are the site's own code, as the trust model says."""
    project = make_project({"sitegen.yaml": CONFIG, "templates/report.html": "{{ ''.__class__.__mro__[1].__name__ }}\n"})
    res = sitegen("-C", str(project), "build", env_cache=user_cache)
    assert res.returncode == 0, res.stderr
    assert (project / "output/reports/first/index.html").read_text() == "object\n"

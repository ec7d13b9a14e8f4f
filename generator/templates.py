"""Every Jinja environment (site, print, prompts), the page context, and the interface strings."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import os
import secrets
import stat
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import jinja2
import jinja2.bccache

from .diagnostics import Diagnostic, Location
from .paths import collect_tree, link_leaving, private_part, symlink_problem
from .yamlsource import parse_yaml

if TYPE_CHECKING:
    from .pages import Site


def theme_dir() -> Path:
    """The built-in theme: `generator/_theme` in a wheel, top-level `templates/` in a checkout."""
    spec = importlib.util.find_spec("generator._theme")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            p = Path(loc)
            if (p / "base.html").is_file():
                return p
    here = Path(__file__).resolve().parent
    for p in (here / "_theme", here.parent / "templates"):
        if (p / "base.html").is_file():
            return p
    raise FileNotFoundError("sitegen's built-in theme is missing from the installation")


@lru_cache(maxsize=4)
def load_strings(theme: Path) -> dict[str, dict[str, str]]:
    """The interface strings of a theme's i18n.yaml: key → {zh, en}."""
    return parse_yaml((theme / "i18n.yaml").read_text(encoding="utf-8")).data


def interface_strings() -> dict[str, dict[str, str]]:
    """The one table of interface strings: the theme, the print templates and the profile diagrams read it."""
    return load_strings(theme_dir())


def template_dirs(project: Path) -> list[Path]:
    """Project templates override the theme file by file."""
    theme = theme_dir()
    dirs = []
    own = project / "templates"
    if own.is_dir() and own.resolve() != theme.resolve():
        dirs.append(own)
    dirs.append(theme)
    return dirs


def collect_template_problems(project: Path) -> list[Diagnostic]:
    """The project's templates/ under the content rules: links out of the project (E), hidden and secret files (W)."""
    own = project / "templates"
    diags: list[Diagnostic] = []
    if own.is_symlink() and link_leaving(own, project):
        return [symlink_problem(own, project)]
    if own.is_dir() and own.resolve() != theme_dir().resolve():
        collect_tree(own, project, diags)
    return diags


class TemplateRefused(jinja2.TemplateError):
    """A template the content rules refuse; carries the diagnostic the build prints."""

    def __init__(self, diagnostic: Diagnostic):
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


class ProjectLoader(jinja2.FileSystemLoader):
    """The template search path; a template linked out of the project, or hidden or secret-named, is refused."""

    def __init__(self, searchpath: list[str], project: Path):
        super().__init__(searchpath)
        self.project = project.absolute()

    def get_source(self, environment: jinja2.Environment, template: str):
        if private_part(template):
            raise TemplateRefused(Diagnostic("error", "hidden", f"refusing to load a hidden or secret file as a template: {template}"))
        source, filename, uptodate = super().get_source(environment, template)
        link = link_leaving(Path(filename).absolute(), self.project)
        if link is not None:
            raise TemplateRefused(symlink_problem(link, self.project))
        return source, filename, uptodate


def format_date(value: Any, lang: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        return value
    if lang == "zh":
        return f"{value.year}年{value.month}月{value.day}日"
    return value.strftime("%-d %B %Y")


def format_number(value: Any, lang: str) -> str:
    if value is None:
        return "—"
    v = float(value)
    if lang == "zh":
        if abs(v) >= 1e8:
            return f"{v / 1e8:.4g}亿"
        if abs(v) >= 1e4:
            return f"{v / 1e4:.4g}万"
        return f"{v:,.4g}" if v != int(v) else f"{int(v):,}"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= size:
            return f"{v / size:.3g}{unit}"
    return f"{v:,.4g}" if v != int(v) else f"{int(v):,}"


def format_money(amount: Any, currency: str, lang: str) -> str:
    return f"{format_number(amount, lang)} {currency}"


def language_helpers(strings: dict[str, dict[str, str]], lang: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """`t(key)` for interface strings and `sector_name(key)`, in one language (site and print share them)."""
    from .models import SECTORS

    def t(key: str) -> str:
        entry = strings.get(key)
        if entry is None:
            raise KeyError(f"interface string '{key}' is not defined in i18n.yaml")
        return entry.get(lang) or entry.get("en") or key

    def sector_name(key: str) -> str:
        names = SECTORS.get(key, (key, key))
        return names[0] if lang == "zh" else names[1]

    return t, sector_name


def page_context(site: "Site", lang: str, strings: dict, helpers: dict[str, Any], *more: dict | None) -> dict[str, Any]:
    """What every template sees, on screen and in print: the site, its language and strings, then the writer's helpers."""
    # The writer's helpers (url, body, job …) are bound to its page or print document; the
    # layers in `more` (a page's own context, the caller's extras) win over them, in order.
    t, sector_name = language_helpers(strings, lang)
    ctx: dict[str, Any] = {
        "site": site,
        "config": site.config,
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "t": t,
        "sector_name": sector_name,
        "sector_names": lambda keys: [sector_name(k) for k in keys],
    }
    ctx.update(helpers)
    for layer in more:
        if layer:
            ctx.update(layer)
    return ctx


class SitegenUndefined(jinja2.StrictUndefined):
    """StrictUndefined: a typo in a theme is an error, never an empty string."""


_ENVIRONMENTS: dict[tuple[str, str], jinja2.Environment] = {}


def _tree_signature(dirs: list[Path]) -> str:
    """Names, sizes and mtimes of every template file: changes when any template does."""
    parts = []
    for d in dirs:
        for p in sorted(d.rglob("*")):
            try:
                st = p.stat()
            except OSError:
                continue
            parts.append(f"{p}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def make_environment(project: Path, strings: dict | None = None, bytecode: bool = False,
                     sandboxed: bool = False) -> jinja2.Environment:
    """Autoescape is on for every template (also .xml, .txt, .j2), and undefined names fail.

    Environments are reused while no template file changes, so a long-running `serve` compiles
    each template once rather than once per rebuild. Callers must not modify what they get.
    With `bytecode`, compiled templates are also kept between runs, in the user's own cache (see
    `SignedBytecodeCache`). `sandboxed` renders in Jinja's immutable sandbox (untrusted builds).
    """
    if strings is not None:
        return _new_environment(project, strings, sandboxed)
    dirs = template_dirs(project)
    key = (str(project.resolve()), _tree_signature(dirs), str(bytecode), str(sandboxed))
    env = _ENVIRONMENTS.get(key)
    if env is None:
        if len(_ENVIRONMENTS) >= 4:
            _ENVIRONMENTS.clear()
        env = _ENVIRONMENTS[key] = _new_environment(project, None, sandboxed)
        if bytecode and not sandboxed:
            # Compiling the theme costs more than an incremental build renders.
            env.bytecode_cache = SignedBytecodeCache.for_user()
    return env


def user_cache_dir() -> Path | None:
    """`$XDG_CACHE_HOME/sitegen`, else `~/.cache/sitegen`: this user's, never the project's."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return Path(base) / "sitegen"


class SignedBytecodeCache(jinja2.BytecodeCache):
    """Jinja's compiled templates, kept in the user's cache folder and signed with a per-user key.

    A bytecode file is marshalled code behind a pickled checksum: loading one runs whatever it
    holds. So it is never read from the project (a repository could ship one), and a file is
    only loaded when its HMAC-SHA256 under this user's secret key (a 0600 file beside it) matches.
    """

    def __init__(self, folder: Path, key: bytes):
        self.folder = folder
        self.key = key

    @classmethod
    def for_user(cls) -> "SignedBytecodeCache | None":
        """The cache of the current user; None (compile every run) when it cannot be set up safely."""
        root = user_cache_dir()
        if root is None:
            return None
        try:
            folder = root / "jinja"
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            key = _user_key(root / "bytecode.key")
        except OSError:
            return None
        return cls(folder, key) if key is not None else None

    def _path(self, bucket: jinja2.bccache.Bucket) -> Path:
        return self.folder / f"{bucket.key}.cache"

    def _mac(self, bucket: jinja2.bccache.Bucket, payload: bytes) -> bytes:
        return hmac.new(self.key, bucket.key.encode() + b"\0" + payload, hashlib.sha256).digest()

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            raw = self._path(bucket).read_bytes()
        except OSError:
            return
        mac, payload = raw[:32], raw[32:]
        if len(mac) == 32 and hmac.compare_digest(mac, self._mac(bucket, payload)):
            bucket.bytecode_from_string(payload)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        payload = bucket.bytecode_to_string()
        path = self._path(bucket)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(self._mac(bucket, payload) + payload)
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache only costs time


def _user_key(path: Path) -> bytes | None:
    """This user's secret key, made on first use; None when the file is not ours alone."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(32))
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        key = fh.read(64)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077 or len(key) != 32:
        return None
    return key


def _new_environment(project: Path, strings: dict | None, sandboxed: bool = False) -> jinja2.Environment:
    kind = jinja2.Environment
    if sandboxed:
        from jinja2.sandbox import ImmutableSandboxedEnvironment as kind
    env = kind(
        loader=ProjectLoader([str(p) for p in template_dirs(project)], project),
        autoescape=True,
        undefined=SitegenUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["date"] = format_date
    env.filters["number"] = format_number
    env.filters["money"] = format_money
    env.globals["strings"] = strings if strings is not None else load_strings(theme_dir())
    return env


def site_environment(project: Path, config: Any) -> jinja2.Environment:
    """The environment of the site's pages and of the print templates (`print/`), which share it;
    sandboxed when the build is untrusted (`config.untrusted`)."""
    # Compiling the theme costs more than an incremental build (or a no-change `sitegen pdf`) renders.
    return make_environment(project, bytecode=True, sandboxed=config.untrusted)


def _prompt_dirs(project: Path) -> list[str]:
    try:
        return [str(p) for p in template_dirs(project)]
    except FileNotFoundError:
        # A checkout whose theme has no base.html yet: the prompts still live in templates/.
        builtin = Path(__file__).resolve().parent.parent / "templates"
        return [str(p) for p in (project / "templates", builtin) if p.is_dir()]


def make_prompt_environment(project: Path) -> jinja2.Environment:
    """Prompts are plain text for the model: no HTML escaping, undefined names are errors."""
    env = jinja2.Environment(
        loader=ProjectLoader(_prompt_dirs(project), project),
        autoescape=False,  # the output is never HTML: it is tokenised and fed to the model
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["money"] = format_money
    env.filters["number"] = format_number
    return env


def template_path(filename: str, project: Path) -> str:
    """A template file as messages name it: inside the project, else the theme's `templates/…`."""
    p = Path(filename).resolve()
    for root, prefix in ((project.resolve(), ""), (theme_dir().resolve(), "templates/")):
        try:
            return prefix + p.relative_to(root).as_posix()
        except ValueError:
            pass
    return filename


def template_error(exc: BaseException, project: Path) -> Diagnostic:
    """Locate a template error at `templates/x.html:line` from Jinja's rewritten traceback."""
    if isinstance(exc, TemplateRefused) and exc.diagnostic.location is not None:
        return exc.diagnostic
    name, line = None, None
    if isinstance(exc, jinja2.TemplateSyntaxError):
        name, line = exc.filename or exc.name, exc.lineno
    else:
        tb = exc.__traceback__
        while tb is not None:
            fn = tb.tb_frame.f_code.co_filename
            if fn.endswith((".html", ".xml", ".txt", ".j2", ".css", ".js")):
                name, line = fn, tb.tb_lineno
            tb = tb.tb_next
    path = template_path(name, project) if name else "templates"
    if isinstance(exc, TemplateRefused):
        return Diagnostic("error", exc.diagnostic.code, exc.diagnostic.message, Location(path, line))
    msg = str(getattr(exc, "message", None) or exc)
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return Diagnostic("error", "sandbox", f"{msg.rstrip('.')} (an untrusted build runs templates in a sandbox)", Location(path, line))
    return Diagnostic("error", "template", msg, Location(path, line))



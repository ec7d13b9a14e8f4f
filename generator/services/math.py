"""Formulas rendered at build time: MathML for the site, SVG (ziamath) for the PDF.

Why MathML for the HTML: latex2mathml converts a formula in ~0.3 ms in-process, ziamath needs
5–15 ms per formula plus worker processes; a 1000-report build with formulas on every page must
finish cold in 4 s on 2 cores, which only the MathML path allows (see benchmarks/bench_math.py).
Browsers draw MathML Core natively (selectable, scales with the text, read by screen readers).
WeasyPrint has no MathML, so PDFs get SVG, rendered from the *same* cleaned MathML, only when
PDFs are built, in killable worker processes (ziamath is pure Python and can take exponential
time on deeply nested scripts).

Pipeline per formula: tokenize the TeX → expand macros (with a limit) → rewrite what
latex2mathml gets wrong (text runs, primes, aligned/alignedat/rcases, array rules, \\tag,
KaTeX extensions) → latex2mathml → parse and validate the XML → keep only whitelisted MathML
elements/attributes → serialize. Math is never handed to a TeX engine.
"""

from __future__ import annotations

import html
import io
import json
import math as _math
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from ..diagnostics import Diagnostics, EnvironmentProblem
from .cache import Cache, hash_key, write_atomic

if TYPE_CHECKING:  # the SVG workers import this module: keep pydantic out of their start-up
    from ..config import MathConfig
    from ..models import Job, JobResult


PIPELINE_VERSION = "math-4"
"""Bump when the markup or the rewriting changes, so cached entries are rebuilt."""

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
MAX_CHARS = 20_000
MAX_DEPTH = 60
MAX_TOKENS_FACTOR = 50
SVG_SIZE = 20.0
"""ziamath font size in px; SVG sizes are written in em relative to this, so they follow the text."""
ERROR_COLOR = "#b91c1c"


class WorkerStartError(Exception):
    """The ziamath worker process could not start (missing package or font)."""


class MathError(Exception):
    """A formula that cannot be rendered; the message has no location (the build adds it)."""


# --- tokens ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tok:
    """One TeX token: a control sequence (`\\frac`, `\\,`), a character, a brace or a macro parameter."""

    kind: str  # "cs" | "char" | "space" | "bgroup" | "egroup" | "param" | "verb"
    text: str

    def is_char(self, c: str) -> bool:
        return self.kind == "char" and self.text == c


BGROUP = Tok("bgroup", "{")
EGROUP = Tok("egroup", "}")
SPACE = Tok("space", " ")

_TOKEN_RE = re.compile(r"\\verb(\*?)([^A-Za-z*])(.*?)\2|\\([A-Za-z]+)|\\(.)|(%[^\n]*)|(\s+)|#([1-9#])|(.)", re.S)


def tokenize(tex: str) -> list[Tok]:
    """Split TeX into tokens; comments go, runs of white space become one space."""
    out: list[Tok] = []
    for m in _TOKEN_RE.finditer(tex):
        vstar, vdelim, vtext, name, sym, comment, ws, param, ch = m.groups()
        if vdelim is not None:
            # \verb reads raw characters, as TeX does by changing catcodes
            out.append(Tok("verb", vtext.replace(" ", "␣") if vstar else vtext))
        elif name is not None:
            out.append(Tok("cs", "\\" + name))
        elif sym is not None:
            out.append(Tok("cs", "\\" + (" " if sym.isspace() else sym)))
        elif comment is not None:
            continue
        elif ws is not None:
            out.append(SPACE)
        elif param is not None:
            out.append(Tok("param", param))
        elif ch == "{":
            out.append(BGROUP)
        elif ch == "}":
            out.append(EGROUP)
        elif ch == "\\":
            raise MathError("formula ends with a lone backslash")
        else:
            out.append(Tok("char", ch))
    return out


def serialize(tokens: Iterable[Tok]) -> str:
    """Tokens back to TeX for latex2mathml (a space after every named control sequence)."""
    parts: list[str] = []
    for t in tokens:
        if t.kind == "cs":
            parts.append(t.text + (" " if t.text[1:2].isalpha() else ""))
        elif t.kind == "verb":
            parts.append("\\text{" + re.sub(r"[^A-Za-z0-9 ]", "", t.text) + "}")
        elif t.kind == "param":
            parts.append("#" + t.text)
        else:
            parts.append(t.text)
    return "".join(parts)


def check_balance(tokens: list[Tok]) -> None:
    """Unbalanced braces and absurd nesting are errors before any renderer sees them."""
    depth = 0
    for t in tokens:
        if t.kind == "bgroup":
            depth += 1
            if depth > MAX_DEPTH:
                raise MathError(f"formula nested too deeply (more than {MAX_DEPTH} levels of braces)")
        elif t.kind == "egroup":
            depth -= 1
            if depth < 0:
                raise MathError("unbalanced braces: unexpected }")
    if depth > 0:
        raise MathError("unbalanced braces: missing }")


class Reader:
    """A token stream with TeX-style argument reading."""

    def __init__(self, tokens: Iterable[Tok]):
        self.q: deque[Tok] = deque(tokens)

    def __bool__(self) -> bool:
        return bool(self.q)

    def peek(self) -> Tok | None:
        return self.q[0] if self.q else None

    def pop(self) -> Tok:
        return self.q.popleft()

    def skip_spaces(self) -> None:
        while self.q and self.q[0].kind == "space":
            self.q.popleft()

    def group(self) -> list[Tok]:
        """The tokens of a `{…}` group whose `{` was just read."""
        out: list[Tok] = []
        depth = 1
        while self.q:
            t = self.q.popleft()
            if t.kind == "bgroup":
                depth += 1
            elif t.kind == "egroup":
                depth -= 1
                if depth == 0:
                    return out
            out.append(t)
        raise MathError("unbalanced braces: missing }")

    def arg(self, what: str = "argument") -> list[Tok]:
        """One argument: a braced group or a single token."""
        self.skip_spaces()
        if not self.q:
            raise MathError(f"missing {what}")
        t = self.q.popleft()
        if t.kind == "bgroup":
            return self.group()
        if t.kind == "egroup":
            raise MathError(f"missing {what}")
        return [t]

    def optarg(self) -> list[Tok] | None:
        """An optional `[…]` argument (brackets inside braces do not end it)."""
        i = 0
        while i < len(self.q) and self.q[i].kind == "space":
            i += 1
        if i == len(self.q) or not self.q[i].is_char("["):
            return None
        for _ in range(i + 1):
            self.q.popleft()
        out: list[Tok] = []
        depth = 0
        while self.q:
            t = self.q.popleft()
            if t.kind == "bgroup":
                depth += 1
            elif t.kind == "egroup":
                depth -= 1
            elif t.is_char("]") and depth == 0:
                return out
            out.append(t)
        raise MathError("missing ] after optional argument")

    def text_arg(self, what: str = "argument") -> str:
        """An argument read as plain characters (names, colours, lengths)."""
        return serialize(self.arg(what)).strip()


# --- macros ------------------------------------------------------------------------------------


@dataclass
class Macro:
    nargs: int
    body: list[Tok]
    default: list[Tok] | None = None


_DEFINERS = {"\\def", "\\gdef", "\\edef", "\\xdef", "\\newcommand", "\\renewcommand", "\\providecommand",
             "\\let", "\\DeclareMathOperator", "\\global"}


def _arity(body: list[Tok]) -> int:
    return max((int(t.text) for t in body if t.kind == "param" and t.text.isdigit()), default=0)


def parse_macros(mapping: dict[str, str]) -> dict[str, Macro]:
    """Config macros (`\\RR: \\mathbb{R}`, `#1` for arguments) as definitions."""
    out = {}
    for name, body in mapping.items():
        name = name if name.startswith("\\") else "\\" + name
        toks = tokenize(body)
        out[name] = Macro(_arity(toks), toks)
    return out


def _read_cs_name(r: Reader) -> str:
    r.skip_spaces()
    if not r:
        raise MathError("missing macro name")
    t = r.pop()
    if t.kind == "bgroup":
        inner = r.group()
        inner = [x for x in inner if x.kind != "space"]
        if len(inner) != 1 or inner[0].kind != "cs":
            raise MathError("macro name must be a single control sequence")
        return inner[0].text
    if t.kind != "cs":
        raise MathError("macro name must be a control sequence")
    return t.text


def _read_definition(cmd: str, r: Reader, macros: dict[str, Macro]) -> None:
    """Read one `\\def`/`\\newcommand`/`\\let`/`\\DeclareMathOperator` and record it."""
    if cmd == "\\global":
        return
    if cmd == "\\let":
        name = _read_cs_name(r)
        r.skip_spaces()
        if r.peek() is not None and r.peek().is_char("="):
            r.pop()
        r.skip_spaces()
        if not r:
            raise MathError("\\let needs two control sequences")
        target = r.pop()
        macros[name] = macros[target.text] if target.text in macros else Macro(0, [target])
        return
    if cmd == "\\DeclareMathOperator":
        star = False
        r.skip_spaces()
        if r.peek() is not None and r.peek().is_char("*"):
            r.pop()
            star = True
        name = _read_cs_name(r)
        body = r.arg("operator name")
        op = Tok("cs", "\\operatorname*" if star else "\\operatorname")
        macros[name] = Macro(0, [op, BGROUP, *body, EGROUP])
        return
    name = _read_cs_name(r)
    if cmd in ("\\newcommand", "\\renewcommand", "\\providecommand"):
        n_tok = r.optarg()
        nargs = 0
        if n_tok is not None:
            text = serialize(n_tok).strip()
            if not text.isdigit() or not 0 <= int(text) <= 9:
                raise MathError(f"{cmd}: number of arguments must be 0–9, not '{text}'")
            nargs = int(text)
        default = r.optarg() if nargs else None
        body = r.arg("macro body")
        if cmd == "\\providecommand" and name in macros:
            return
        macros[name] = Macro(nargs, body, default)
        return
    # \def\name#1#2{body}: only undelimited parameters are supported
    params: list[Tok] = []
    while r and r.peek().kind != "bgroup":
        params.append(r.pop())
    if any(p.kind not in ("param", "space") for p in params):
        raise MathError(f"{cmd}: delimited macro parameters are not supported")
    if not r:
        raise MathError(f"{cmd}: missing macro body")
    r.pop()
    body = r.group()
    macros[name] = Macro(len([p for p in params if p.kind == "param"]), body)


def expand_macros(tokens: list[Tok], macros: dict[str, Macro], limit: int) -> list[Tok]:
    """Expand user and config macros; stop with "math expansion limit" on recursion bombs."""
    macros = dict(macros)
    r = Reader(tokens)
    out: list[Tok] = []
    expansions = 0
    max_tokens = max(2000, MAX_TOKENS_FACTOR * len(tokens))
    while r:
        t = r.pop()
        if t.kind == "cs" and t.text in _DEFINERS:
            _read_definition(t.text, r, macros)
            continue
        if t.kind == "cs" and t.text in macros:
            expansions += 1
            if expansions > limit or len(r.q) + len(out) > max_tokens:
                raise MathError("math expansion limit")
            m = macros[t.text]
            args: list[list[Tok]] = []
            if m.default is not None:
                opt = r.optarg()
                args.append(opt if opt is not None else m.default)
            while len(args) < m.nargs:
                args.append(r.arg(f"argument of {t.text}"))
            body: list[Tok] = []
            for b in m.body:
                if b.kind == "param" and b.text.isdigit() and int(b.text) <= len(args):
                    body.extend(args[int(b.text) - 1])
                elif b.kind == "param" and b.text == "#":
                    body.append(Tok("char", "#"))
                else:
                    body.append(b)
            r.q.extendleft(reversed(body))
            continue
        out.append(t)
    return out


# --- rewriting for latex2mathml ---------------------------------------------------------------

TEXT_VARIANTS = {
    "\\text": "", "\\textrm": "", "\\textup": "", "\\textnormal": "", "\\textmd": "", "\\mbox": "",
    "\\hbox": "", "\\textbf": "bold", "\\textit": "italic", "\\emph": "italic", "\\textsf": "sans-serif",
    "\\texttt": "monospace",
}
_TEXT_SWITCHES = {"\\bf": "bold", "\\it": "italic", "\\sf": "sans-serif", "\\tt": "monospace", "\\rm": "",
                  "\\normalfont": "", "\\itshape": "italic", "\\bfseries": "bold", "\\upshape": "",
                  "\\sffamily": "sans-serif", "\\ttfamily": "monospace", "\\rmfamily": ""}
_SIZES = {"\\tiny", "\\scriptsize", "\\footnotesize", "\\small", "\\normalsize", "\\large", "\\Large", "\\LARGE",
          "\\huge", "\\Huge"}
_VARIANT_CMD = {"": "\\text", "bold": "\\textbf", "italic": "\\textit", "sans-serif": "\\textsf",
                "monospace": "\\texttt"}
_SYMBOLS = {
    # characters both modes share; KaTeX accepts these, latex2mathml does not know them
    "\\textbackslash": "\\", "\\textdollar": "$", "\\textunderscore": "_", "\\textsterling": "£",
    "\\textbraceleft": "{", "\\textbraceright": "}", "\\textregistered": "®", "\\degree": "°",
    "\\maltese": "✠", "\\minuso": "⦵", "\\textasciitilde": "~", "\\textasciicircum": "^", "\\textbar": "|",
    "\\textless": "<", "\\textgreater": ">", "\\textendash": "–", "\\textemdash": "—", "\\textellipsis": "…",
    "\\copyright": "©", "\\textdagger": "†", "\\textdaggerdbl": "‡", "\\textbullet": "•",
}
_TEXT_SYMBOLS = {
    **_SYMBOLS,
    "\\{": "{", "\\}": "}", "\\$": "$", "\\%": "%", "\\&": "&", "\\#": "#", "\\_": "_", "\\ ": " ",
    "\\i": "ı", "\\j": "ȷ", "\\ss": "ß", "\\ae": "æ", "\\AE": "Æ", "\\oe": "œ", "\\OE": "Œ", "\\o": "ø",
    "\\O": "Ø", "\\aa": "å", "\\AA": "Å", "\\l": "ł", "\\L": "Ł", "\\S": "§", "\\P": "¶", "\\dag": "†",
    "\\ddag": "‡", "\\pounds": "£", "\\textquoteleft": "‘", "\\textquoteright": "’", "\\textquotedblleft": "“",
    "\\textquotedblright": "”", "\\ldots": "…", "\\dots": "…", "\\quad": "\u2003", "\\qquad": "\u2003\u2003",
    "\\,": "\u2009", "\\;": "\u2005", "\\:": "\u2005", "\\>": "\u2005", "\\!": "", "\\/": "",
    "\\nobreakspace": "\u00a0", "\\space": " ", "\\\\": " ", "\\newline": " ", "\\relax": "",
}
_ACCENTS = {"\\'": "\u0301", "\\`": "\u0300", "\\^": "\u0302", '\\"': "\u0308", "\\~": "\u0303",
            "\\=": "\u0304", "\\.": "\u0307", "\\H": "\u030b", "\\r": "\u030a", "\\u": "\u0306",
            "\\v": "\u030c", "\\c": "\u0327", "\\k": "\u0328", "\\textcircled": "\u20dd"}

_ALIGN_ENVS = {"aligned", "align", "align*", "flalign", "flalign*", "eqnarray", "eqnarray*"}
_ALIGNAT_ENVS = {"alignedat", "alignat", "alignat*"}
_GATHER_ENVS = {"gathered", "gather", "gather*", "multline", "multline*"}
_PLAIN_ENVS = {"equation", "equation*", "displaymath", "math"}
_L2M_ENVS = {"matrix", "matrix*", "pmatrix", "pmatrix*", "bmatrix", "bmatrix*", "Bmatrix", "Bmatrix*",
             "vmatrix", "vmatrix*", "Vmatrix", "Vmatrix*", "cases", "split", "smallmatrix", "substack"}
# Commands that act on "the rest of the group": inside a table cell they must not swallow the next cell.
_CELL_LOCAL = {"\\over", "\\atop", "\\choose", "\\above", "\\brace", "\\brack", "\\abovewithdelims",
               "\\atopwithdelims", "\\displaystyle", "\\textstyle", "\\scriptstyle", "\\scriptscriptstyle",
               "\\color", "\\bf", "\\rm", "\\it", "\\sf", "\\tt", "\\cal", *_SIZES}

_IGNORED = {"\\nonumber", "\\notag", "\\relax", "\\nobreak", "\\allowbreak", "\\displaybreak",
            "\\protect", "\\strut"}
_HTML_EXT = {"\\htmlStyle", "\\htmlClass", "\\htmlId", "\\htmlData"}
_STYLES = ["\\displaystyle", "\\textstyle", "\\scriptstyle", "\\scriptscriptstyle"]


def _chars(text: str) -> list[Tok]:
    return [Tok("char", c) for c in text]


def _env(cmd: str, name: str) -> list[Tok]:
    return [Tok("cs", cmd), BGROUP, *_chars(name), EGROUP]


@dataclass
class Rewritten:
    """The TeX handed to latex2mathml plus what the rewriting learned on the way."""

    tex: str
    placeholders: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Placeholder id → (kind "text"/"op", real text)."""
    tag: list[Tok] | None = None
    tag_star: bool = False
    warnings: list[str] = field(default_factory=list)


class Rewriter:
    """Token rewrites for constructs latex2mathml mis-handles or that must not reach it."""

    def __init__(self, display: bool):
        self.display = display
        self.placeholders: dict[str, tuple[str, str]] = {}
        self.warnings: list[str] = []
        self.tags: list[tuple[list[Tok], bool]] = []

    def warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)

    def placeholder(self, kind: str, text: str) -> str:
        """A letters-only stand-in that latex2mathml passes through unchanged."""
        n = len(self.placeholders)
        name = "zq"
        while True:
            name += "abcdefghijklmnopqrstuvwxyz"[n % 26]
            n //= 26
            if n == 0:
                break
        name += "qz"
        self.placeholders[name] = (kind, text)
        return name

    def text_token(self, text: str, variant: str = "") -> list[Tok]:
        return [Tok("cs", _VARIANT_CMD[variant]), BGROUP, Tok("char", self.placeholder("text", text)), EGROUP]

    # text mode ----------------------------------------------------------------------------

    def text_runs(self, tokens: list[Tok], variant: str) -> list[Tok]:
        """Text-mode tokens → `\\text{placeholder}` runs and `{math}` islands."""
        out: list[Tok] = []
        buf: list[str] = []
        r = Reader(tokens)

        def flush() -> None:
            if buf:
                out.extend(self.text_token(unicodedata.normalize("NFC", "".join(buf)), variant))
                buf.clear()

        while r:
            t = r.pop()
            if t.kind == "space":
                buf.append(" ")
            elif t.kind in ("bgroup", "egroup"):
                continue
            elif t.kind == "param":
                buf.append("#")
            elif t.is_char("$") or (t.kind == "cs" and t.text == "\\("):
                closer = "$" if t.is_char("$") else "\\)"
                island: list[Tok] = []
                while r and not (r.peek().is_char("$") if closer == "$" else r.peek().text == "\\)"):
                    island.append(r.pop())
                if not r:
                    raise MathError("unclosed $ inside text")
                r.pop()
                flush()
                out.extend([BGROUP, *self.rewrite(island), EGROUP])
            elif t.kind == "char":
                buf.append(self.text_char(t.text, r))
            elif t.text in _TEXT_SYMBOLS:
                buf.append(_TEXT_SYMBOLS[t.text])
            elif t.text in _ACCENTS:
                base = r.arg("accented letter")
                base_text = "".join(_TEXT_SYMBOLS.get(b.text, b.text) for b in base if b.kind != "space") or " "
                buf.append(base_text[0] + _ACCENTS[t.text] + base_text[1:])
            elif t.text in TEXT_VARIANTS:
                flush()
                out.extend(self.text_runs(r.arg(), TEXT_VARIANTS[t.text] or variant))
            elif t.text in _TEXT_SWITCHES:
                flush()
                rest = list(r.q)
                r.q.clear()
                out.extend(self.text_runs(rest, _TEXT_SWITCHES[t.text]))
            elif t.text in _SIZES:
                continue  # sizes inside text are not kept (text runs are plain strings)
            elif t.kind == "verb":
                buf.append(t.text)
            elif t.text in ("\\textcolor", "\\color"):
                self.warn(f"{t.text} inside \\text is ignored")
                r.arg()
            else:
                # \underline{…}, \LaTeX, \phantom{…}: back to math, with the braced arguments as text.
                flush()
                out.append(t)
                while r.peek() is not None and r.peek().kind == "bgroup":
                    r.pop()
                    out.extend([BGROUP, *self.text_runs(r.group(), variant), EGROUP])
        flush()
        return out

    @staticmethod
    def text_char(c: str, r: Reader) -> str:
        """TeX's text ligatures: ~ -- --- `` ''."""
        nxt = r.peek()
        if c == "~":
            return "\u00a0"
        if c == "-" and nxt is not None and nxt.is_char("-"):
            r.pop()
            if r.peek() is not None and r.peek().is_char("-"):
                r.pop()
                return "—"
            return "–"
        if c in "`'" and nxt is not None and nxt.is_char(c):
            r.pop()
            return "“" if c == "`" else "”"
        return {"`": "‘", "'": "’"}.get(c, c)

    # math mode ----------------------------------------------------------------------------

    def rewrite(self, tokens: list[Tok]) -> list[Tok]:
        """Rewrite math-mode tokens (recursively for arguments that hold math)."""
        out: list[Tok] = []
        r = Reader(tokens)
        while r:
            t = r.pop()
            if t.is_char("'"):
                self.primes(out, r)
            elif t.kind == "verb":
                out.extend(self.text_token(t.text, "monospace"))
            elif t.kind != "cs":
                out.append(t)
            else:
                self.command(t, r, out)
        return out

    def command(self, t: Tok, r: Reader, out: list[Tok]) -> None:
        """One control sequence in math mode."""
        name = t.text
        if name in TEXT_VARIANTS:
            out.extend([BGROUP, *self.text_runs(r.arg(f"argument of {name}"), TEXT_VARIANTS[name]), EGROUP])
        elif name == "\\verb":
            raise MathError("\\verb needs a closing delimiter")
        elif name in ("\\tag", "\\tag*"):
            self.read_tag(r, name == "\\tag*")
        elif name in _IGNORED:
            return
        elif name in _SYMBOLS:
            out.append(Tok("char", _SYMBOLS[name]))
        elif name == "\\KaTeX":
            out.extend(self.text_token("KaTeX"))
        elif name == "\\label":
            r.arg("label")
            self.warn("\\label inside math is ignored (write $$…$$ (label) instead)")
        elif name == "\\begin":
            out.extend(self.environment(r))
        elif name == "\\end":
            raise MathError(f"\\end{{{r.text_arg('environment name')}}} without matching \\begin")
        elif name in ("\\operatorname", "\\operatorname*", "\\operatornamewithlimits"):
            star = name != "\\operatorname"
            if r.peek() is not None and r.peek().is_char("*"):
                r.pop()
                star = True
            body = r.arg("operator name")
            text = "".join(_TEXT_SYMBOLS.get(b.text, b.text) for b in body if b.kind != "space")
            out.extend([Tok("cs", "\\operatornamewithlimits" if star else "\\operatorname"), BGROUP,
                        Tok("char", self.placeholder("op", text)), EGROUP])
        elif name == "\\genfrac":
            out.extend(self.genfrac(r))
        elif name == "\\href":
            url = r.text_arg("URL")
            body = r.arg("link text")
            self.warn(f"\\href is not supported in math: the link to {url} is not rendered")
            out.extend([BGROUP, *self.rewrite(body), EGROUP])
        elif name == "\\url":
            url = r.text_arg("URL")
            self.warn("\\url is not supported in math: shown as text")
            out.extend(self.text_token(url, "monospace"))
        elif name == "\\includegraphics":
            r.optarg()
            r.arg("image")
            self.warn("\\includegraphics is not supported in math: the image is left out")
        elif name in _HTML_EXT:
            r.arg()
            body = r.arg()
            self.warn(f"{name} is ignored: math cannot set HTML attributes")
            out.extend([BGROUP, *self.rewrite(body), EGROUP])
        elif name == "\\raisebox":
            r.arg("raise amount")
            out.extend([BGROUP, *self.text_runs(r.arg("box content"), ""), EGROUP])
        elif name == "\\underbar":
            out.extend([Tok("cs", "\\underline"), BGROUP, *self.rewrite(r.arg("argument of \\underbar")), EGROUP])
        elif name == "\\fbox":
            out.extend([Tok("cs", "\\boxed"), BGROUP, *self.text_runs(r.arg("box content"), ""), EGROUP])
        elif name in ("\\llap", "\\rlap", "\\clap"):
            # latex2mathml copies their argument raw into the XML; as text runs it stays escaped
            out.extend([BGROUP, *self.text_runs(r.arg("box content"), ""), EGROUP])
        elif name in ("\\style", "\\class", "\\cssId"):
            r.arg()
            self.warn(f"{name} is ignored: math cannot set HTML attributes")
            out.extend([BGROUP, *self.rewrite(r.arg()), EGROUP])
        elif name == "\\vcenter":
            out.extend([BGROUP, *self.rewrite(r.arg("box content")), EGROUP])
        elif name in ("\\unicode", "\\char"):
            out.append(Tok("char", self.char_code(name, r)))
        elif name in ("\\colorbox", "\\fcolorbox"):
            colours = [r.text_arg("colour") for _ in range(2 if name == "\\fcolorbox" else 1)]
            body = self.text_runs(r.arg("box content"), "")
            if len(body) == 4 and body[0].text == "\\text":
                # latex2mathml reads the box content as text: hand it the bare placeholder
                body = body[2:3]
            else:
                self.warn(f"{name} with math inside: the background is left out")
                out.extend([BGROUP, *body, EGROUP])
                return
            out.append(Tok("cs", name))
            for c in colours:
                out.extend([BGROUP, *tokenize(c), EGROUP])
            out.extend([BGROUP, *body, EGROUP])
        elif name == "\\textcolor":
            colour = r.text_arg("colour")
            body = r.arg("coloured text")
            out.extend([Tok("cs", name), BGROUP, *tokenize(colour), EGROUP, BGROUP, *self.rewrite(body), EGROUP])
        elif name == "\\color":
            out.extend([Tok("cs", name), BGROUP, *tokenize(r.text_arg("colour")), EGROUP])
        elif name == "\\newline":
            out.append(Tok("cs", "\\\\"))
        else:
            out.append(t)

    def primes(self, out: list[Tok], r: Reader) -> None:
        """`x'^2`, `x'_3^2`: primes join the superscript (latex2mathml calls them a double superscript)."""
        n = 1
        while r.peek() is not None and r.peek().is_char("'"):
            r.pop()
            n += 1
        sub: list[Tok] | None = None
        sup: list[Tok] = []
        for _ in range(2):
            r.skip_spaces()
            nxt = r.peek()
            if nxt is not None and nxt.is_char("_") and sub is None:
                r.pop()
                sub = self.rewrite(r.arg("subscript"))
            elif nxt is not None and nxt.is_char("^") and not sup:
                r.pop()
                sup = self.rewrite(r.arg("superscript"))
        if sub is not None:
            out.extend([Tok("char", "_"), BGROUP, *sub, EGROUP])
        out.extend([Tok("char", "^"), BGROUP, *[Tok("cs", "\\prime")] * n, *sup, EGROUP])

    def genfrac(self, r: Reader) -> list[Tok]:
        """`\\genfrac{l}{r}{thickness}{style}{num}{den}` spelled with \\left, \\above and a style."""
        left = [t for t in r.arg("left delimiter") if t.kind != "space"] or [Tok("char", ".")]
        right = [t for t in r.arg("right delimiter") if t.kind != "space"] or [Tok("char", ".")]
        thickness = r.text_arg("thickness") or "0.04em"
        style = r.text_arg("style")
        num = self.rewrite(r.arg("numerator"))
        den = self.rewrite(r.arg("denominator"))
        if not re.fullmatch(r"-?\d*\.?\d+\s*(pt|em|ex|mu|px|mm|cm|in)?", thickness):
            raise MathError("\\genfrac: thickness must be a length such as 0.4pt")
        out: list[Tok] = [BGROUP]
        if style:
            if style not in "0123" or len(style) != 1:
                raise MathError("\\genfrac: style must be 0, 1, 2 or 3")
            out.append(Tok("cs", _STYLES[int(style)]))
        out.extend([Tok("cs", "\\left"), *left, BGROUP, *num, Tok("cs", "\\above"), *_chars(thickness.replace(" ", "")),
                    SPACE, *den, EGROUP, Tok("cs", "\\right"), *right, EGROUP])
        return out

    def char_code(self, name: str, r: Reader) -> str:
        """`\\unicode{x41}`, `\\unicode{"41}`, `\\unicode{65}`, `\\char"41` → the character, or an error."""
        if name == "\\unicode":
            text = r.text_arg("character code").replace(" ", "")
        else:
            parts = []
            r.skip_spaces()
            while r.peek() is not None and r.peek().kind == "char" and re.fullmatch(r"[\"'0-9A-Fa-fx]", r.peek().text):
                parts.append(r.pop().text)
            text = "".join(parts)
        m = re.fullmatch(r'(?:(?:0?x|")([0-9A-Fa-f]{1,6})|([0-9]{1,7}))', text)
        if not m:
            raise MathError(f"{name} needs a character code such as x41 or 65")
        code = int(m[1], 16) if m[1] else int(m[2])
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code < 32:
            raise MathError(f"{name}: not a valid character code")
        return chr(code)

    def read_tag(self, r: Reader, star: bool) -> None:
        if r.peek() is not None and r.peek().is_char("*"):
            r.pop()
            star = True
        body = r.arg("tag")
        if not self.display:
            self.warn("\\tag is ignored in inline math")
            return
        self.tags.append((body, star))

    # environments ---------------------------------------------------------------------------

    def env_body(self, r: Reader, env: str) -> list[Tok]:
        """Tokens up to the `\\end{env}` that closes this `\\begin{env}`."""
        body: list[Tok] = []
        depth = 0
        while r:
            t = r.pop()
            if t.kind == "cs" and t.text == "\\begin":
                depth += 1
            elif t.kind == "cs" and t.text == "\\end":
                if depth == 0:
                    name = r.text_arg("environment name").replace(" ", "")
                    if name != env:
                        raise MathError(f"\\begin{{{env}}} ended by \\end{{{name}}}")
                    return body
                depth -= 1
            body.append(t)
        raise MathError(f"\\begin{{{env}}} without matching \\end{{{env}}}")

    def environment(self, r: Reader) -> list[Tok]:
        """Map environments latex2mathml mishandles onto ones it draws correctly."""
        env = r.text_arg("environment name").replace(" ", "")
        spec: list[Tok] = []
        cell_prefix: list[Tok] = []
        if env in _ALIGNAT_ENVS:
            r.arg("column count")
        if env in ("array", "darray", "subarray"):
            spec = [BGROUP, *_chars(self.column_spec(r.arg("column specification"))), EGROUP]
        if env.endswith("*") and env in _L2M_ENVS:
            opt = r.optarg()
            if opt is not None:
                spec = [Tok("char", "["), *opt, Tok("char", "]")]
        body = self.env_body(r, env)
        if env in _PLAIN_ENVS:
            return [BGROUP, *self.rewrite(split_top_lines(body)), EGROUP]
        if env in _ALIGN_ENVS or env in _ALIGNAT_ENVS:
            return [*_env("\\begin", "align*"), *self.cells(body, []), *_env("\\end", "align*")]
        if env in _GATHER_ENVS:
            return [*_env("\\begin", "array"), BGROUP, Tok("char", "c"), EGROUP, *self.cells(body, []),
                    *_env("\\end", "array")]
        if env in ("rcases", "drcases"):
            cell_prefix = [Tok("cs", "\\displaystyle")] if env == "drcases" else []
            return [Tok("cs", "\\left"), Tok("char", "."), *_env("\\begin", "array"), BGROUP, *_chars("ll"), EGROUP,
                    *self.cells(body, cell_prefix), *_env("\\end", "array"), Tok("cs", "\\right"), Tok("cs", "\\}")]
        if env == "dcases":
            return [*_env("\\begin", "cases"), *self.cells(body, [Tok("cs", "\\displaystyle")]), *_env("\\end", "cases")]
        if env in ("array", "darray", "subarray"):
            prefix = [Tok("cs", "\\scriptstyle")] if env == "subarray" else []
            prefix = [Tok("cs", "\\displaystyle")] if env == "darray" else prefix
            return [*_env("\\begin", "array"), *spec, *self.cells(body, prefix), *_env("\\end", "array")]
        if env in _L2M_ENVS:
            return [*_env("\\begin", env), *spec, *self.cells(body, []), *_env("\\end", env)]
        self.warn(f"unknown environment {env}")
        return [BGROUP, *self.rewrite(body), EGROUP]

    def cells(self, body: list[Tok], prefix: list[Tok]) -> list[Tok]:
        """Rewrite a table body cell by cell; cells with \\over or a style switch get braces."""
        out: list[Tok] = []
        cell: list[Tok] = []
        r = Reader(body)
        depth = 0

        def close_cell() -> None:
            lead: list[Tok] = []
            rest = list(cell)
            while rest and (rest[0].kind == "space" or rest[0].text in ("\\hline", "\\hdashline")):
                lead.append(rest.pop(0))
            content = self.rewrite(rest)
            top = _top_level_cs(content)
            out.extend(lead)
            if prefix or top & _CELL_LOCAL:
                out.extend([BGROUP, *prefix, *content, EGROUP])
            else:
                out.extend(content)
            cell.clear()

        while r:
            t = r.pop()
            if t.kind == "bgroup" or (t.kind == "cs" and t.text == "\\begin"):
                depth += 1
            elif t.kind == "egroup" or (t.kind == "cs" and t.text == "\\end"):
                depth -= 1
            if depth == 0 and (t.is_char("&") or (t.kind == "cs" and t.text in ("\\\\", "\\cr", "\\newline"))):
                close_cell()
                if t.is_char("&"):
                    out.append(t)
                else:
                    out.append(Tok("cs", "\\\\"))
                    r.optarg()  # row spacing such as \\[1em] is not kept
                continue
            cell.append(t)
        close_cell()
        return out

    def column_spec(self, toks: list[Tok]) -> str:
        """`{|rl:c||}` → `rlc`: latex2mathml emits broken XML for rules in the column spec."""
        text = serialize(toks)
        text = re.sub(r"\*\s*\{(\d+)\}\s*\{([^{}]*)\}", lambda m: m[2] * min(int(m[1]), 50), text)
        text = re.sub(r"[@!><]\s*\{[^{}]*\}", "", text)
        text = re.sub(r"[pmb]\s*\{[^{}]*\}", "l", text)
        spec = "".join(c for c in text if c in "lcr")
        return spec or "c"


def _top_level_cs(tokens: list[Tok]) -> set[str]:
    depth = 0
    out = set()
    for t in tokens:
        if t.kind == "bgroup":
            depth += 1
        elif t.kind == "egroup":
            depth -= 1
        elif t.kind == "cs" and depth == 0:
            out.add(t.text)
    return out


def split_top_lines(tokens: list[Tok]) -> list[Tok]:
    """Top-level `\\\\` make the formula an array: browsers ignore MathML's linebreak."""
    depth = env = 0
    for t in tokens:
        if t.kind == "bgroup":
            depth += 1
        elif t.kind == "egroup":
            depth -= 1
        elif t.kind == "cs" and t.text == "\\begin":
            env += 1
        elif t.kind == "cs" and t.text == "\\end":
            env -= 1
        elif t.kind == "cs" and t.text in ("\\\\", "\\newline", "\\cr") and depth == 0 and env == 0:
            return [*_env("\\begin", "gathered"), *tokens, *_env("\\end", "gathered")]
    return tokens


def rewrite_formula(source: str, display: bool, macros: dict[str, Macro], limit: int) -> Rewritten:
    """Source TeX → the TeX latex2mathml gets, with placeholders, tag and warnings."""
    if len(source) > MAX_CHARS:
        raise MathError(f"formula longer than {MAX_CHARS} characters")
    tokens = tokenize(source)
    check_balance(tokens)
    tokens = expand_macros(tokens, macros, limit)
    tokens = [BGROUP if t.text == "\\bgroup" else EGROUP if t.text == "\\egroup" else t for t in tokens]
    check_balance(tokens)
    rw = Rewriter(display)
    body = rw.rewrite(split_top_lines(tokens))
    result = Rewritten(serialize(body), rw.placeholders, warnings=rw.warnings)
    if len(rw.tags) > 1:
        raise MathError("more than one \\tag in a formula")
    if rw.tags:
        result.tag, result.tag_star = rw.tags[0]
    return result


# --- MathML: convert, validate, sanitize -------------------------------------------------------

_ELEMENTS = {
    "math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup", "munder", "mover",
    "munderover", "mfrac", "msqrt", "mroot", "mstyle", "merror", "mpadded", "mphantom", "mtable", "mtr", "mtd",
    "menclose", "mmultiscripts", "mprescripts", "none", "semantics", "annotation",
}
_TOKEN_ELEMENTS = {"mi", "mn", "mo", "ms", "mtext"}
_ATTRS = {
    "display", "displaystyle", "scriptlevel", "mathvariant", "mathsize", "mathcolor", "mathbackground",
    "stretchy", "fence", "form", "separator", "lspace", "rspace", "minsize", "maxsize", "largeop",
    "movablelimits", "symmetric", "accent", "accentunder", "linethickness", "width", "height", "depth",
    "voffset", "columnalign", "rowalign", "columnspacing", "rowspacing", "columnlines", "rowlines", "frame",
    "framespacing", "notation", "columnspan", "rowspan", "linebreak", "bevelled", "align",
}
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9 .%+\-]{0,64}$")
_COLOUR_VALUE = re.compile(r"^(#[0-9A-Fa-f]{3}|#[0-9A-Fa-f]{6}|[A-Za-z]{1,20})$")
_TEXT_STYLE = {"bold": "font-weight:bold", "italic": "font-style:italic", "bold-italic": "font-weight:bold;font-style:italic",
               "sans-serif": "font-family:sans-serif", "monospace": "font-family:monospace"}

_ARITY = {
    "mfrac": (2, "a fraction (\\frac, \\binom, \\over)"), "msub": (2, "a subscript"), "msup": (2, "a superscript"),
    "msubsup": (3, "a subscript or superscript"), "mroot": (2, "a root"), "munder": (2, "an under-script"),
    "mover": (2, "an over-script or accent (\\overset, \\stackrel, \\hat)"), "munderover": (3, "limits"),
}
"""Children each MathML element needs; latex2mathml leaves them out when an argument is missing."""

_L2M_ERRORS = {
    "NumeratorNotFoundError": "fraction without numerator",
    "DenominatorNotFoundError": "fraction without denominator",
    "ExtraLeftOrMissingRightError": "\\left without matching \\right",
    "MissingSuperScriptOrSubscriptError": "^ or _ without an argument",
    "DoubleSubscriptsError": "double subscript",
    "DoubleSuperscriptsError": "double superscript",
    "NoAvailableTokensError": "formula ends too early (missing argument?)",
    "InvalidStyleForGenfracError": "invalid style argument of \\genfrac",
    "MissingEndError": "\\begin without matching \\end",
    "InvalidAlignmentError": "invalid column alignment",
    "InvalidWidthError": "invalid width",
    "LimitsMustFollowMathOperatorError": "\\limits must follow a math operator",
}


def _math_alnum(ch: str, variant: str) -> str:
    """A letter or digit in the Unicode math alphabets (MathML Core only knows mathvariant=normal)."""
    prefix = {
        "bold": "MATHEMATICAL BOLD", "italic": "MATHEMATICAL ITALIC", "bold-italic": "MATHEMATICAL BOLD ITALIC",
        "double-struck": "MATHEMATICAL DOUBLE-STRUCK", "script": "MATHEMATICAL SCRIPT",
        "bold-script": "MATHEMATICAL BOLD SCRIPT", "fraktur": "MATHEMATICAL FRAKTUR",
        "bold-fraktur": "MATHEMATICAL BOLD FRAKTUR", "sans-serif": "MATHEMATICAL SANS-SERIF",
        "bold-sans-serif": "MATHEMATICAL SANS-SERIF BOLD", "sans-serif-italic": "MATHEMATICAL SANS-SERIF ITALIC",
        "sans-serif-bold-italic": "MATHEMATICAL SANS-SERIF BOLD ITALIC", "monospace": "MATHEMATICAL MONOSPACE",
    }.get(variant)
    if prefix is None:
        return ch
    if ch.isascii() and ch.isalpha():
        kind = "CAPITAL" if ch.isupper() else "SMALL"
        names = [f"{prefix} {kind} {ch.upper()}"]
        short = prefix.replace("MATHEMATICAL ", "").replace("FRAKTUR", "BLACK-LETTER")
        names += [f"{short} {kind} {ch.upper()}", f"{prefix.replace('MATHEMATICAL ', '')} {kind} {ch.upper()}"]
        if variant == "italic" and ch == "h":
            names.insert(0, "PLANCK CONSTANT")
    elif ch.isascii() and ch.isdigit():
        names = [f"{prefix} DIGIT {unicodedata.name(ch).split()[-1]}"]
    elif variant in ("bold", "bold-italic", "italic") and "GREEK" in unicodedata.name(ch, ""):
        names = [f"{prefix} {unicodedata.name(ch).replace('GREEK ', '').replace('LETTER ', '')}"]
    else:
        return ch
    for name in names:
        try:
            return unicodedata.lookup(name)
        except KeyError:
            continue
    return ch


def _clean_tree(elem: ET.Element, placeholders: dict[str, tuple[str, str]], unknown: list[str]) -> ET.Element:
    """A fresh tree with only whitelisted MathML; placeholders get their real text."""
    tag = elem.tag.split("}", 1)[-1]
    if tag not in _ELEMENTS:
        tag = "mrow"
    new = ET.Element(tag)
    variant = elem.get("mathvariant", "")
    for name, value in elem.attrib.items():
        name = name.split("}", 1)[-1]
        if name not in _ATTRS or name == "display":
            continue
        if name in ("mathcolor", "mathbackground"):
            if not _COLOUR_VALUE.match(value):
                continue
        elif not _SAFE_VALUE.match(value):
            continue
        new.set(name, value)
    text = elem.text or ""
    if tag in _TOKEN_ELEMENTS and text:
        stripped = text.strip()
        if stripped in placeholders:
            kind, real = placeholders[stripped]
            # MathML trims white space at the ends of token elements; TeX text keeps it
            text = real.replace(" ", "\u00a0") if kind == "text" else real
        elif re.fullmatch(r"\\[A-Za-z]+\*?", stripped):
            unknown.append(stripped)
            new.set("mathcolor", ERROR_COLOR)
            variant = ""
        elif re.fullmatch(r"\\[^A-Za-z]", stripped):
            text = stripped[1]
        if tag in ("mi", "mn") and variant and variant != "normal":
            mapped = "".join(_math_alnum(c, variant) for c in text)
            if mapped != text:
                text = mapped
                new.attrib.pop("mathvariant", None)
        if tag == "mtext" and variant in _TEXT_STYLE:
            new.set("style", _TEXT_STYLE[variant])
        new.text = text
    for child in elem:
        new.append(_clean_tree(child, placeholders, unknown))
    return new


def _drop_trailing_empty_rows(root: ET.Element) -> None:
    for table in root.iter("mtable"):
        while len(table) and table[-1].tag == "mtr" and all(
            not "".join(td.itertext()).strip() and not len(td) for td in table[-1]
        ):
            table.remove(table[-1])


def _unwrap_single_mrows(elem: ET.Element) -> None:
    """`<mrow>` with one child is the child: fewer nested rows keep ziamath from going exponential."""
    for i, child in enumerate(list(elem)):
        _unwrap_single_mrows(child)
        while child.tag == "mrow" and len(child) == 1 and not child.attrib and not (child.text or "").strip():
            inner = child[0]
            inner.tail = child.tail
            elem[i] = inner
            child = inner


def convert_mathml(tex: str, placeholders: dict[str, tuple[str, str]], display: bool) -> tuple[ET.Element, list[str]]:
    """latex2mathml → validated, whitelisted MathML element (a <math> root) and unknown commands."""
    from latex2mathml.converter import convert

    mode = "block" if display else "inline"
    if not tex.strip():
        return ET.Element("math"), []
    try:
        xml = convert(tex, display=mode)
    except RecursionError:
        raise MathError("formula nested too deeply") from None
    except Exception as exc:  # latex2mathml signals bad input with many exception types
        name = type(exc).__name__
        raise MathError(_L2M_ERRORS.get(name, f"cannot parse formula ({name})")) from None
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        # latex2mathml wrote invalid XML without raising: a stray & or a construct it cannot draw.
        if re.search(r"<mi>&</mi>", xml):
            raise MathError("misplaced alignment character & (use an environment such as aligned)") from None
        raise MathError("cannot convert formula (latex2mathml produced invalid MathML)") from None
    unknown: list[str] = []
    clean = _clean_tree(root, placeholders, unknown)
    _drop_trailing_empty_rows(clean)
    _unwrap_single_mrows(clean)
    for el in clean.iter():
        if el.tag in _ARITY and len(el) != _ARITY[el.tag][0]:
            raise MathError(f"missing argument of {_ARITY[el.tag][1]}")
    for el in clean.iter():
        if el.tag in _TOKEN_ELEMENTS and el.text and "&" in el.text and re.search(r"&#x?[0-9A-Fa-f]*[^0-9A-Fa-f;]", el.text):
            raise MathError("invalid character reference in formula")
    return clean, unknown


# --- markup ------------------------------------------------------------------------------------


def _mathml_markup(root: ET.Element, source: str, display: bool) -> str:
    """Serialize MathML with the TeX source as annotation and alttext."""
    if len(root) == 1 and root[0].tag == "mrow":
        body = root[0]
    else:
        body = ET.Element("mrow")
        body.extend(list(root))
    math_el = ET.Element("math", {"xmlns": MATHML_NS, "display": "block" if display else "inline",
                                  "class": "math-mathml", "alttext": source})
    sem = ET.SubElement(math_el, "semantics")
    sem.append(body)
    ann = ET.SubElement(sem, "annotation", {"encoding": "application/x-tex"})
    ann.text = source
    return ET.tostring(math_el, encoding="unicode", short_empty_elements=False)


def wrap_inline(inner: str, source: str, extra_class: str = "") -> str:
    cls = "math math-inline" + (" " + extra_class if extra_class else "")
    return f'<span class="{cls}" data-tex="{html.escape(source, quote=True)}">{inner}</span>'


def wrap_display(inner: str, source: str, tag_html: str | None, extra_class: str = "") -> str:
    """Display math centred; a tag sits at the right without pulling the formula off centre."""
    cls = "math math-display" + (" " + extra_class if extra_class else "")
    src = html.escape(source, quote=True)
    # Wide formulas scroll on screen; paper has no scrolling (and WeasyPrint no overflow-x).
    scroll = "" if extra_class == "math-print" else ";overflow-x:auto"
    if tag_html is None:
        return (f'<span class="{cls}" data-tex="{src}" style="display:block;text-align:center;'
                f'margin:0.6em 0{scroll}">{inner}</span>')
    return (f'<span class="{cls} math-tagged" data-tex="{src}" style="display:grid;'
            f'grid-template-columns:1fr auto 1fr;align-items:center;margin:0.6em 0">'
            f'<span class="math-body" style="grid-column:2;text-align:center{scroll}">{inner}</span>'
            f'<span class="math-tag" style="grid-column:3;justify-self:end;padding-left:1em">{tag_html}</span></span>')


def error_markup(source: str, message: str, display: bool) -> str:
    """The source, escaped, in a visible box with the message."""
    src = html.escape(source, quote=True)
    msg = html.escape(message, quote=True)
    delim = ("$$", "$$") if display else ("$", "$")
    box = (f'<span class="math math-error" role="note" title="{msg}" style="display:{"block" if display else "inline-block"};'
           f'border:1px solid {ERROR_COLOR};background:#fef2f2;color:{ERROR_COLOR};padding:0 0.3em;'
           f'border-radius:3px;font-family:monospace;white-space:pre-wrap">'
           f'{html.escape(delim[0])}{src}{html.escape(delim[1])}'
           f'<span class="math-error-message" style="font-family:sans-serif;font-size:0.8em"> — {msg}</span></span>')
    return box


# --- the HTML (MathML) path -------------------------------------------------------------------


@dataclass
class Prepared:
    """A formula after rewriting and conversion: MathML for the site, reused by the SVG path."""

    source: str
    display: bool
    mathml: ET.Element | None = None
    tag_mathml: ET.Element | None = None
    tag_text: str | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _tag_source(tag: list[Tok], star: bool) -> str:
    text = serialize(tag)
    return text if star else f"({text})"


def prepare_formula(source: str, display: bool, macros: dict[str, Macro], limit: int) -> Prepared:
    """Rewrite and convert one formula; all failures end up in `errors`."""
    p = Prepared(source, display)
    try:
        rw = rewrite_formula(source, display, macros, limit)
        p.warnings.extend(rw.warnings)
        p.mathml, unknown = convert_mathml(rw.tex, rw.placeholders, display)
        for name in dict.fromkeys(unknown):
            p.warnings.append(f"unknown command {name}")
        if rw.tag is not None:
            trw = Rewriter(False)
            toks = trw.text_runs(rw.tag, "")
            if not rw.tag_star:
                toks = [Tok("char", "("), *toks, Tok("char", ")")]
            p.tag_mathml, _ = convert_mathml(serialize(toks), trw.placeholders, False)
            p.tag_text = _tag_source(rw.tag, rw.tag_star)
            p.warnings.extend(w for w in trw.warnings if w not in p.warnings)
    except MathError as exc:
        p.errors.append(str(exc))
        p.mathml = None
    return p


def render_mathml_html(p: Prepared) -> str:
    """Site markup for a prepared formula (error box when it failed)."""
    if p.errors or p.mathml is None:
        return error_markup(p.source, p.errors[0] if p.errors else "cannot render formula", p.display)
    inner = _mathml_markup(p.mathml, p.source, p.display)
    if not p.display:
        return wrap_inline(inner, p.source)
    tag_html = None
    if p.tag_mathml is not None:
        tag_html = _mathml_markup(p.tag_mathml, p.tag_text or "", False)
    return wrap_display(inner, p.source, tag_html)


# --- the SVG (ziamath) path, in killable workers ------------------------------------------------

_SVG_TWEAKS = [
    # ziamath draws these arrows/brackets stretchy unless told (as its own tex2mml does).
    (re.compile(r"<mo>(\u2191|\u2193)</mo>"), r'<mo stretchy="false">\1</mo>'),
    (re.compile(r'<mo stretchy="false">\^</mo>'), '<mo stretchy="false">\u02c6</mo>'),
    (re.compile(r"<mo>\^</mo>"), "<mo>\u0302</mo>"),
    (re.compile(r"<mo>~</mo>"), "<mo>\u0303</mo>"),
]


_POSITIONAL = {"msub", "msup", "msubsup", "mfrac", "mroot", "munder", "mover", "munderover", "mmultiscripts"}


def _svg_mathml(root: ET.Element, display: bool) -> str:
    """The MathML string given to ziamath: same tree, fewer single-child rows, its tweaks."""
    copy = ET.fromstring(ET.tostring(root, encoding="unicode"))
    _unwrap_single_mrows(copy)
    # ziamath drops <mstyle> tags textually, so an mstyle that is one positional child of a
    # script or fraction would turn into several children: keep it inside its own row.
    for parent in copy.iter():
        if parent.tag in _POSITIONAL:
            for i, child in enumerate(list(parent)):
                if child.tag == "mstyle":
                    row = ET.Element("mrow")
                    row.append(child)
                    parent[i] = row
    copy.set("display", "block" if display else "inline")
    for el in copy.iter("mtext"):
        el.attrib.pop("style", None)
    text = ET.tostring(copy, encoding="unicode")
    for pat, rep in _SVG_TWEAKS:
        text = pat.sub(rep, text)
    return text


@dataclass
class SvgTask:
    key: str
    mathml: str
    tag_mathml: str | None
    display: bool
    font: str | None = None
    """A fallback font for characters STIX Two Math lacks (CJK)."""


def find_cjk_font() -> tuple[str, int] | None:
    """A system font with CJK glyphs (path, index in a collection) for text ziamath's font lacks."""
    fc = shutil.which("fc-match")
    if fc:
        try:
            out = subprocess.run([fc, "--format=%{file}\n%{index}\n", "serif:lang=zh-cn"], capture_output=True,
                                 text=True, timeout=10).stdout.split("\n")
            if out and out[0] and Path(out[0]).exists() and "CJK" in out[0]:
                return out[0], int(out[1] or 0)
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
    for path, index in (("/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc", 2),
                        ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2)):
        if Path(path).exists():
            return path, index
    return None


_CJK_RANGES = ((0x2E80, 0x2FDF), (0x3000, 0x30FF), (0x3100, 0x31FF), (0x3200, 0x4DBF), (0x4E00, 0x9FFF),
               (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xF900, 0xFAFF), (0xFE30, 0xFE4F), (0xFF00, 0xFFEF),
               (0x20000, 0x3FFFF))


def is_cjk(c: str) -> bool:
    """Characters STIX Two Math and DejaVu lack and a CJK font has (Han, kana, Hangul, full-width)."""
    o = ord(c)
    return any(lo <= o <= hi for lo, hi in _CJK_RANGES)


_FONT_MAGIC = (b"\x00\x01\x00\x00", b"OTTO", b"true")


def build_fallback_font(chars: set[str], cache_dir: Path | None) -> tuple[str | None, set[str]]:
    """A small TrueType font with the given characters from the system CJK font.

    ziafont reads neither font collections nor CID-keyed CFF (what Noto CJK ships), so the glyphs
    are copied as quadratic outlines into a plain TrueType font. Returns (path, chars found).
    """
    found = find_cjk_font()
    if not chars or found is None:
        return None, set()
    path, index = found
    key = hash_key("cjk-fallback-1", path, str(index), str(os.path.getsize(path)), "".join(sorted(chars)))
    base = cache_dir if cache_dir is not None else Path(os.environ.get("TMPDIR", "/tmp")) / "sitegen-math-fonts"
    target = base / "fonts" / f"{key[:32]}.ttf"
    meta = target.with_suffix(".json")
    if target.exists() and meta.exists():
        try:
            found_chars = json.loads(meta.read_text("utf-8"))
        except (ValueError, OSError, RecursionError):
            found_chars = None
        if isinstance(found_chars, list) and all(isinstance(c, str) for c in found_chars) and target.read_bytes()[:4] in _FONT_MAGIC:
            return str(target), set(found_chars)
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.cu2quPen import Cu2QuPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen
    from fontTools.ttLib import TTCollection, TTFont

    src = TTCollection(path, lazy=True).fonts[index] if path.lower().endswith((".ttc", ".otc")) else TTFont(path, lazy=True)
    cmap = src.getBestCmap()
    glyphset = src.getGlyphSet()
    upm = src["head"].unitsPerEm
    hmtx = src["hmtx"]
    order = [".notdef"]
    glyphs: dict[str, Any] = {}
    metrics: dict[str, tuple[int, int]] = {}
    mapping: dict[int, str] = {}
    pen = TTGlyphPen(None)
    glyphs[".notdef"] = pen.glyph()
    metrics[".notdef"] = (upm // 2, 0)
    have: set[str] = set()
    for ch in sorted(chars):
        gname = cmap.get(ord(ch))
        if gname is None:
            continue
        name = f"u{ord(ch):04X}"
        pen = TTGlyphPen(None)
        glyphset[gname].draw(Cu2QuPen(pen, max_err=1.0, reverse_direction=True))
        glyphs[name] = pen.glyph()
        adv, _lsb = hmtx[gname]
        metrics[name] = (adv, 0)
        order.append(name)
        mapping[ord(ch)] = name
        have.add(ch)
    fb = FontBuilder(upm, isTTF=True)
    fb.setupGlyphOrder(order)
    fb.setupCharacterMap(mapping)
    fb.setupGlyf(glyphs)
    for name, g in glyphs.items():
        g.recalcBounds(fb.font["glyf"])
        metrics[name] = (metrics[name][0], getattr(g, "xMin", 0) or 0)
    fb.setupHorizontalMetrics(metrics)
    asc = src["hhea"].ascent
    desc = src["hhea"].descent
    fb.setupHorizontalHeader(ascent=asc, descent=desc)
    fb.setupNameTable({"familyName": "SitegenMathCJK", "styleName": "Regular"})
    fb.setupOS2(sTypoAscender=asc, sTypoDescender=desc, usWinAscent=asc, usWinDescent=-desc)
    fb.setupPost()
    buf = io.BytesIO()
    fb.save(buf)
    write_atomic(target, buf.getvalue())
    write_atomic(meta, json.dumps(sorted(have)).encode("utf-8"))
    return str(target), have


def _worker_main() -> None:
    """Worker process (JSON lines on stdin/stdout): render SVG tasks with ziamath until stdin closes."""
    import types

    out = sys.stdout
    sys.stdout = sys.stderr  # a stray print in a library must not corrupt the protocol
    try:
        import ziafont
        import ziamath
        from ziamath import zmath

        ziafont.config.svg2 = False  # plain paths: no <symbol> ids that clash between inline SVGs
        ziafont.config.precision = 2
        font = zmath.loadedfonts["default"]
        fallbacks: dict[str, list[Any]] = {}
        state: dict[str, Any] = {"chain": [], "missing": set()}
        dejavu = ziafont.Font()  # ziafont's bundled DejaVu Sans: Latin, Greek, Cyrillic, symbols
        plain_findglyph = font.findglyph

        def findglyph(self: Any, char: str, variant: Any) -> Any:
            """STIX Two Math first; glyphs it lacks (CJK in \\text, rare letters) from the fallbacks."""
            glyph = plain_findglyph(char, variant)
            if glyph.index == 0 and not char.isspace():
                for fb in state["chain"]:
                    if fb.glyphindex(char):
                        return fb.glyph(char)
                state["missing"].add(char)
            return glyph

        font.findglyph = types.MethodType(findglyph, font)
        zmath.loadedfonts["sitegen"] = font
        out.write(json.dumps({"status": "ready"}) + "\n")
        out.flush()
    except Exception as exc:  # an environment problem: reported by the parent
        out.write(json.dumps({"status": "failed", "detail": f"{type(exc).__name__}: {exc}"}) + "\n")
        out.flush()
        return
    for line in sys.stdin:
        task = json.loads(line)
        path = task.get("font") or ""
        if path not in fallbacks:
            fallbacks[path] = ([ziafont.Font(path)] if path else []) + [dejavu]
        state["chain"] = fallbacks[path]
        state["missing"] = set()
        started = time.perf_counter()
        try:
            result = {"svg": _render_svg(ziamath, task["mathml"], task["display"])}
            if task.get("tag"):
                result["tag"] = _render_svg(ziamath, task["tag"], False)
            result["missing"] = sorted(state["missing"])
            result["seconds"] = time.perf_counter() - started
            reply = {"status": "ok", "result": result}
        except Exception as exc:  # ziamath fails on odd MathML with many exception types
            reply = {"status": "error", "detail": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def _render_svg(ziamath: Any, mathml: str, display: bool) -> dict:
    """One MathML string → SVG text plus its size and baseline (in em); plainer MathML if it fails."""
    try:
        m = ziamath.Math(mathml, size=SVG_SIZE, font="sitegen", margin=1.0)
    except Exception:
        m = ziamath.Math(_plain_mathml(mathml), size=SVG_SIZE, font="sitegen", margin=1.0)
    svg = m.svgxml()
    bbox = m.node.bbox
    width = bbox.xmax - bbox.xmin + 2 * m.margin
    height = bbox.ymax - bbox.ymin + 2 * m.margin
    depth = -bbox.ymin + m.margin
    return {"svg": ET.tostring(svg, encoding="unicode"), "width": width / SVG_SIZE,
            "height": height / SVG_SIZE, "depth": depth / SVG_SIZE}


def _plain_mathml(mathml: str) -> str:
    """The fallback for ziamath: style and padding wrappers become plain rows."""
    root = ET.fromstring(mathml)
    for el in root.iter():
        if el.tag in ("mstyle", "mpadded", "mphantom", "menclose"):
            el.tag = "mrow"
            el.attrib.clear()
    return ET.tostring(root, encoding="unicode")


class _Worker:
    """One ziamath worker process and its pipes."""

    def __init__(self) -> None:
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from generator.services.math import _worker_main; _worker_main()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            encoding="utf-8",
        )
        self.started = time.monotonic()
        self.ready = False
        self.task: SvgTask | None = None
        self.deadline = 0.0

    def fileno(self) -> int:
        assert self.proc.stdout is not None
        return self.proc.stdout.fileno()

    def read(self) -> dict | None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None

    def send(self, task: SvgTask, timeout: float) -> None:
        assert self.proc.stdin is not None
        self.task = task
        self.deadline = time.monotonic() + timeout
        self.proc.stdin.write(json.dumps({"mathml": task.mathml, "tag": task.tag_mathml, "display": task.display,
                                          "font": task.font}) + "\n")
        self.proc.stdin.flush()

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SvgPool:
    """ziamath worker processes; a formula over its time limit gets its worker killed and replaced.

    Workers are plain `python -c` subprocesses speaking JSON lines: nothing is forked from the
    build, and they can be started early so their import time overlaps the MathML work.
    """

    STARTUP_TIMEOUT = 120.0

    def __init__(self, workers: int, timeout: float):
        import selectors

        self.timeout = timeout
        self.sel = selectors.DefaultSelector()
        self.workers = [self._spawn() for _ in range(max(1, workers))]

    def _spawn(self) -> _Worker:
        import selectors

        w = _Worker()
        self.sel.register(w, selectors.EVENT_READ)
        return w

    def _retire(self, w: _Worker, respawn: bool) -> None:
        self.sel.unregister(w)
        w.stop(kill=True)
        self.workers = [x for x in self.workers if x is not w] + ([self._spawn()] if respawn else [])

    def run(self, tasks: list[SvgTask]) -> dict[str, tuple[str, Any]]:
        """Render all tasks; returns key → ("ok", result) | ("error"/"timeout", message)."""
        results: dict[str, tuple[str, Any]] = {}
        pending = deque(tasks)
        while pending or any(w.task for w in self.workers):
            for w in self.workers:
                if w.ready and w.task is None and pending:
                    w.send(pending.popleft(), self.timeout)
            deadlines = [w.deadline if w.task else w.started + self.STARTUP_TIMEOUT
                         for w in self.workers if w.task or not w.ready]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for key, _ in self.sel.select(wait_for):
                w = key.fileobj
                assert isinstance(w, _Worker)
                msg = w.read()
                if msg is None or msg.get("status") == "failed":
                    detail = (msg or {}).get("detail", "math worker stopped")
                    if not w.ready:
                        raise WorkerStartError(detail)
                    if w.task is not None:
                        results[w.task.key] = ("error", detail)
                    self._retire(w, respawn=bool(pending))
                elif msg.get("status") == "ready":
                    w.ready = True
                elif w.task is not None:
                    ok = msg.get("status") == "ok"
                    results[w.task.key] = ("ok", msg["result"]) if ok else ("error", msg.get("detail", ""))
                    w.task = None
            now = time.monotonic()
            for w in list(self.workers):
                if w.task is not None and now >= w.deadline:
                    results[w.task.key] = ("timeout", f"math render timed out after {self.timeout:g} s")
                    self._retire(w, respawn=bool(pending))
                elif not w.ready and now >= w.started + self.STARTUP_TIMEOUT:
                    raise WorkerStartError(f"no answer within {self.STARTUP_TIMEOUT:g} s")
        return results

    def close(self) -> None:
        for w in self.workers:
            self.sel.unregister(w)
            w.stop()
        self.workers = []
        self.sel.close()


def _svg_element(r: dict, source: str, display: bool) -> str:
    """Inline SVG markup: sized in em, shifted by the renderer's depth so the baseline lines up."""
    root = ET.fromstring(r["svg"])
    for el in root.iter():
        el.tag = el.tag.split("}", 1)[-1]
        if el.get("fill") in ("black", "#000", "#000000"):
            el.set("fill", "currentColor")
    for t in list(root):
        if t.tag == "title":
            root.remove(t)
    root.attrib.pop("xmlns:xlink", None)
    root.set("xmlns", "http://www.w3.org/2000/svg")
    root.set("width", f"{r['width']:.3f}em")
    root.set("height", f"{r['height']:.3f}em")
    root.set("role", "img")
    root.set("aria-label", source)
    root.set("class", "math-svg")
    root.set("style", f"vertical-align:{-r['depth']:.3f}em" + (";max-width:100%" if display else ""))
    root.set("data-depth", f"{r['depth']:.3f}")
    title = ET.Element("title")
    title.text = source
    root.insert(0, title)
    # Invisible text over the drawing keeps the TeX source selectable and copyable in the PDF.
    vb = [float(x) for x in root.get("viewBox", "0 0 1 1").split()]
    txt = ET.SubElement(root, "text", {"x": f"{vb[0]:.2f}", "y": "0", "fill-opacity": "0", "style": "white-space:pre",
                                       "font-size": f"{max(1.0, min(SVG_SIZE, vb[2] / max(1, len(source)) * 1.8)):.2f}",
                                       "class": "math-source"})
    txt.text = source
    return ET.tostring(root, encoding="unicode", short_empty_elements=True)


def render_svg_html(p: Prepared, r: dict) -> str:
    """Print (PDF) markup for a formula from the worker's SVG."""
    inner = _svg_element(r["svg"], p.source, p.display)
    if not p.display:
        return wrap_inline(inner, p.source, "math-print")
    tag_html = _svg_element(r["tag"], p.tag_text or "", False) if r.get("tag") else None
    return wrap_display(inner, p.source, tag_html, "math-print")


# --- resolve: cache, dedupe, render ------------------------------------------------------------


def _versions() -> tuple[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("latex2mathml", "ziamath"):
        try:
            out.append(version(pkg))
        except PackageNotFoundError:
            out.append("missing")
    return out[0], out[1]


def _entry(entry: dict) -> str:
    return json.dumps({k: entry[k] for k in ("html", "errors", "warnings")}, ensure_ascii=False)


def _load_entry(cache: Cache, key: str) -> dict | None:
    text = cache.get_text(key)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        data = None
    # Checked, not trusted: a wrong shape is a damaged entry, rebuilt, never a crash.
    if (isinstance(data, dict) and isinstance(data.get("html"), str)
            and all(isinstance(data.get(k), list) and all(isinstance(m, str) for m in data[k]) for k in ("errors", "warnings"))):
        return data
    cache.corrupt.append(key)
    return None


@dataclass
class RenderStats:
    """What the last resolve_formulas call did (for the benchmark and tests)."""

    unique: int = 0
    rendered_mathml: int = 0
    rendered_svg: int = 0
    cache_hits: int = 0
    mathml_seconds: list[float] = field(default_factory=list)
    """Per formula: rewrite, latex2mathml, sanitize and markup."""
    svg_seconds: list[float] = field(default_factory=list)
    """Per formula: ziamath time inside its worker."""
    svg_failed_start: str = ""


last_stats = RenderStats()


def resolve_formulas(jobs: list[Job], config: MathConfig, cache_root: Path | None, workers: int,
                     want_print: bool, diags: Diagnostics | None = None) -> dict[str, JobResult]:
    """Render every math job (cache first); returns job key → result with site and print markup."""
    from ..models import JobResult

    global last_stats
    stats = RenderStats()
    last_stats = stats
    l2m_version, zia_version = _versions()
    cache = Cache(cache_root, "math")
    macros_spec = dict(getattr(config, "macros", {}) or {})
    macros_id = json.dumps(macros_spec, sort_keys=True)
    limit = config.max_expansions
    use_svg_html = config.html == "svg"
    try:
        macros = parse_macros(macros_spec)
        macro_error = None
    except MathError as exc:
        macros, macro_error = {}, f"math.macros: {exc}"

    # Dedupe: the same formula (source + display) renders once however often it appears.
    unique: dict[tuple[str, bool], list[Job]] = {}
    for job in jobs:
        if job.kind in ("math-inline", "math-display"):
            unique.setdefault((job.source, job.kind == "math-display"), []).append(job)
    stats.unique = len(unique)

    svg_id = hash_key("svg", zia_version, str(config.timeout), str(SVG_SIZE))
    html_keys: dict[tuple[str, bool], str] = {}
    print_keys: dict[tuple[str, bool], str] = {}
    site: dict[tuple[str, bool], dict] = {}
    prints: dict[tuple[str, bool], dict] = {}
    for ident in unique:
        source, display = ident
        base = (PIPELINE_VERSION, l2m_version, macros_id, str(limit), "display" if display else "inline", source)
        html_keys[ident] = hash_key("html", config.html, svg_id if use_svg_html else "", *base)
        print_keys[ident] = hash_key("print", svg_id, *base)
        if (hit := _load_entry(cache, html_keys[ident])) is not None:
            site[ident] = hit
        if want_print and (phit := _load_entry(cache, print_keys[ident])) is not None:
            prints[ident] = phit

    need_svg = [i for i in unique if (want_print and i not in prints) or (use_svg_html and i not in site)]
    n_workers = min(workers, _math.ceil(len(need_svg) / 20))
    # With many formulas to draw, start the workers now so their start-up overlaps the MathML work.
    pool = SvgPool(n_workers, config.timeout) if len(need_svg) >= 20 else None
    try:
        prepared: dict[tuple[str, bool], Prepared] = {}
        for ident in [i for i in unique if i not in site or i in need_svg]:
            started = time.perf_counter()
            p = prepared[ident] = prepare_formula(ident[0], ident[1], macros, limit)
            if macro_error:
                p.errors.insert(0, macro_error)
            stats.rendered_mathml += 1
            if ident not in site and not use_svg_html:
                site[ident] = {"html": render_mathml_html(p), "errors": list(p.errors), "warnings": list(p.warnings)}
                stats.mathml_seconds.append(time.perf_counter() - started)
                cache.put_text(html_keys[ident], _entry(site[ident]))
        drawable = [prepared[i] for i in need_svg if not prepared[i].errors]
        if drawable and pool is None:
            pool = SvgPool(n_workers, config.timeout)
        if need_svg:
            try:
                svg_results = _render_svgs(pool, drawable, cache_root) if pool is not None else {}
            except WorkerStartError as exc:
                stats.svg_failed_start = str(exc)
                svg_results = {}
            stats.rendered_svg = len(svg_results)
            stats.svg_seconds = [r[1]["seconds"] for r in svg_results.values() if r[0] == "ok"]
            for ident in need_svg:
                _store_svg(ident, prepared[ident], svg_results.get(ident), want_print, use_svg_html,
                           site, prints, cache, html_keys, print_keys)
    finally:
        if pool is not None:
            pool.close()
    if stats.svg_failed_start:
        raise EnvironmentProblem(f"math: the SVG renderer (ziamath) could not start: {stats.svg_failed_start}")

    stats.cache_hits = sum(1 for i in unique if i not in prepared)
    results: dict[str, JobResult] = {}
    for ident, group in unique.items():
        s = site[ident]
        pr = prints.get(ident) if want_print else None
        errors = list(dict.fromkeys(s["errors"] + (pr["errors"] if pr else [])))
        warnings = list(dict.fromkeys(s["warnings"] + (pr["warnings"] if pr else [])))
        for key in dict.fromkeys(job.key for job in group):  # the Markdown stage keys jobs by content
            results[key] = JobResult(html=s["html"], print_html=pr["html"] if pr else None, errors=list(errors),
                                     warnings=list(warnings), cached=ident not in prepared)
    if diags is not None:
        diags.extend(cache.problems())  # damaged entries were rebuilt above; the build names them
    return results


def _store_svg(ident: tuple[str, bool], p: Prepared, outcome: tuple[str, Any] | None, want_print: bool,
               use_svg_html: bool, site: dict, prints: dict, cache: Cache, html_keys: dict, print_keys: dict) -> None:
    """Turn one worker outcome into print (and, with html: svg, site) entries, and cache them."""
    status, payload = outcome or ("error", "not rendered")
    warnings = list(p.warnings)
    if p.errors:
        entry = {"html": render_mathml_html(p), "errors": list(p.errors), "warnings": warnings}
    elif status == "ok":
        missing = "".join(payload.get("missing") or [])
        if missing:
            warnings.append(f"no glyph for '{missing}' in the math fonts: drawn as a box in the PDF "
                            "(install fonts-noto-cjk for Chinese)")
        entry = {"html": render_svg_html(p, payload), "errors": [], "warnings": warnings}
    else:
        message = payload if status == "timeout" else f"cannot draw formula as SVG ({payload})"
        entry = {"html": error_markup(p.source, message, p.display), "errors": [message], "warnings": warnings}
    # A timeout depends on how busy the machine was, not only on the formula: never cache it.
    cacheable = status != "timeout"
    if want_print and ident not in prints:
        prints[ident] = entry
        if cacheable:
            cache.put_text(print_keys[ident], _entry(entry))
    if use_svg_html and ident not in site:
        if entry["errors"] and not p.errors:
            # The browser can still draw MathML when the SVG renderer gives up.
            site[ident] = {"html": render_mathml_html(p), "errors": [],
                           "warnings": warnings + [f"{entry['errors'][0]}; the site shows MathML instead"]}
        else:
            site[ident] = entry
        if cacheable:
            cache.put_text(html_keys[ident], _entry(site[ident]))


def _render_svgs(pool: SvgPool, items: list[Prepared], cache_root: Path | None) -> dict:
    """SVG for each prepared formula via the worker pool; CJK text gets a fallback font."""
    if not items:
        return {}
    chars: set[str] = set()
    for p in items:
        for root in (p.mathml, p.tag_mathml):
            if root is not None:
                for t in root.itertext():
                    chars.update(c for c in t if is_cjk(c))
    font_path, _ = build_fallback_font(chars, (cache_root / "math") if cache_root is not None else None)
    tasks = [SvgTask(str(i), _svg_mathml(p.mathml, p.display),
                     _svg_mathml(p.tag_mathml, False) if p.tag_mathml is not None else None, p.display, font_path)
             for i, p in enumerate(items)]
    raw = pool.run(tasks)
    return {(p.source, p.display): raw.get(str(i), ("error", "not rendered")) for i, p in enumerate(items)}

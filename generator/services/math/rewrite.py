"""Token rewrites for what latex2mathml gets wrong or must not see: text runs, primes, environments, \\tag."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .macros import Macro, expand_macros
from .tokens import BGROUP, EGROUP, SPACE, MathError, Reader, Tok, check_balance, serialize, tokenize

MAX_CHARS = 20_000

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

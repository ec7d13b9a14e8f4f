"""TeX tokens: the tokenizer, serializer, brace check and the argument-reading `Reader`."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Iterable

MAX_DEPTH = 60


class MathError(Exception):
    """A formula that cannot be rendered; the message has no location (the build adds it)."""


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

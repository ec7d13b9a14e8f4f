"""TeX macros: config macros and `\\def`/`\\newcommand`/`\\let` in formulas, expanded with a limit."""

from __future__ import annotations

from dataclasses import dataclass

from .tokens import BGROUP, EGROUP, MathError, Reader, Tok, serialize, tokenize

MAX_TOKENS_FACTOR = 50


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

"""MathML for the site: latex2mathml, then validate and whitelist the tree, then the page markup."""

from __future__ import annotations

import html
import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from .macros import Macro
from .rewrite import Rewriter, rewrite_formula
from .tokens import MathError, Tok, serialize

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
ERROR_COLOR = "#b91c1c"

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


def unwrap_single_mrows(elem: ET.Element) -> None:
    """`<mrow>` with one child is the child: fewer nested rows keep ziamath from going exponential."""
    for i, child in enumerate(list(elem)):
        unwrap_single_mrows(child)
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
    unwrap_single_mrows(clean)
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

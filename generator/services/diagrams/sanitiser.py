"""The SVG allowlist: elements, attributes and CSS a renderer may hand us, ids and CSS scoped to one diagram.

CSS (style attributes and <style> sheets) is tokenised with tinycss2, the parser WeasyPrint uses;
it is imported on first use so that `sitegen --help` and a build without diagrams never load it.
"""

from __future__ import annotations

import functools
from collections import Counter
import html
import re
from xml.etree import ElementTree as ET

from .errors import DiagramError

MAX_SVG_CHARS = 20_000_000
FONT_STACK = (
    "'Noto Sans','Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Hiragino Sans GB',"
    "'Microsoft YaHei','WenQuanYi Micro Hei','Noto Sans CJK JP',sans-serif"
)
SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"


_ELEMENTS = {
    "svg", "g", "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "text", "tspan",
    "textPath", "title", "desc", "defs", "marker", "linearGradient", "radialGradient", "stop",
    "clipPath", "mask", "pattern", "symbol", "use", "style",
}
_UNWRAP = {"a", "switch"}
_TEXT_ELEMENTS = {"text", "tspan", "textPath", "title", "desc", "style"}
_ATTRS = {
    "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "width", "height", "d",
    "points", "transform", "viewBox", "preserveAspectRatio", "fill", "fill-opacity", "fill-rule",
    "stroke", "stroke-width", "stroke-dasharray", "stroke-dashoffset", "stroke-linecap",
    "stroke-linejoin", "stroke-miterlimit", "stroke-opacity", "opacity", "font-size", "font-family",
    "font-weight", "font-style", "font-variant", "text-anchor", "dominant-baseline",
    "alignment-baseline", "baseline-shift", "letter-spacing", "word-spacing", "text-decoration",
    "dx", "dy", "rotate", "textLength", "lengthAdjust", "class", "style", "role", "space", "offset",
    "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
    "markerWidth", "markerHeight", "markerUnits", "refX", "refY", "orient", "patternUnits",
    "patternContentUnits", "patternTransform", "clipPathUnits", "maskUnits", "maskContentUnits",
    "clip-path", "clip-rule", "mask", "marker-start", "marker-mid", "marker-end", "visibility",
    "display", "pathLength", "vector-effect", "paint-order", "shape-rendering", "text-rendering",
    "writing-mode", "color", "overflow", "id", "href", "aria-label", "aria-roledescription",
    "aria-hidden", "aria-labelledby", "aria-describedby", "startOffset", "method", "spacing", "side",
}
_URL_ATTRS = {"fill", "stroke", "clip-path", "mask", "marker-start", "marker-mid", "marker-end"}
_CSS_PROPS = {
    "fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-dasharray",
    "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "stroke-opacity",
    "opacity", "font", "font-size", "font-family", "font-weight", "font-style", "font-variant",
    "text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift", "letter-spacing",
    "word-spacing", "text-decoration", "text-transform", "direction", "rx", "ry", "color",
    "visibility", "display", "transform", "transform-origin", "transform-box", "paint-order",
    "white-space", "line-height", "stop-color", "stop-opacity", "clip-path", "mask", "marker-start",
    "marker-mid", "marker-end", "marker", "vector-effect", "shape-rendering", "text-rendering",
    "writing-mode", "cursor", "pointer-events",
}
_BAD_VALUE = re.compile(r"(?i)(?:javascript|vbscript|data|file|https?|ftp)\s*:|expression\s*\(|@import|\\|/\*|<|>|[{}]|-moz-binding|behavior\s*:")
_URL_REF = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.I)
_ID_RE = re.compile(r"^[A-Za-z_][\w.:-]{0,127}$")
_CLASS_RE = re.compile(r"^[A-Za-z_][\w-]{0,63}$")
_CLASS_LIST = re.compile(r"[A-Za-z_][\w-]{0,63}(?: [A-Za-z_][\w-]{0,63})*\Z")
_SELECTOR_RE = re.compile(r"^[\w\s#.,:>+~*()\[\]=\"'^$|-]+$")


def _local(name: str) -> tuple[str, str]:
    if name.startswith("{"):
        ns, _, local = name[1:].partition("}")
        return ns, local
    return "", name


class _Scope:
    """Renames every id to `<scope>-<id>` and rewrites references; unknown references are dropped.

    With `removed` (a standalone SVG file, not a diagram in a page) ids keep their names, CSS is not
    confined to a root id, and everything dropped is counted there by name for the author's warning.
    """

    def __init__(self, scope: str, ids: set[str], root_id: str | None, removed: Counter[str] | None = None):
        self.scope = scope
        self.ids = ids
        self.root_id = root_id
        self.removed = removed

    def drop(self, what: str) -> None:
        if self.removed is not None:
            self.removed[what] += 1

    def ref(self, ident: str) -> str | None:
        if self.removed is not None:
            return ident if ident in self.ids else None
        if self.root_id is not None and ident == self.root_id:
            return self.scope
        if ident in self.ids:
            return f"{self.scope}-{ident}"
        return None

    def url_value(self, value: str) -> str | None:
        """A value whose url(...) references all point inside this diagram, rewritten; else None."""

        def sub(m: re.Match) -> str:
            target = m[2].strip()
            if not target.startswith("#"):
                raise ValueError
            new = self.ref(target[1:])
            if new is None:
                raise ValueError
            return f"url(#{new})"

        try:
            return _URL_REF.sub(sub, value)
        except ValueError:
            return None


def _css_value(prop: str, value: str, scope: _Scope) -> str | None:
    value = value.strip()
    if not value or len(value) > 300:
        return None
    if "url(" in value.lower():
        rewritten = scope.url_value(value)
        if rewritten is None:
            return None
        value = rewritten
        if _BAD_VALUE.search(_URL_REF.sub("", value)):
            return None
        return value
    if _BAD_VALUE.search(value):
        return None
    return value


def _css_declarations(text: str, scope: _Scope, drop: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    if "url(" not in text.lower() and scope.removed is None:
        return list(_plain_declarations(text, drop))  # no reference to rescope: the same for every diagram
    return _declarations(text, scope, drop)


@functools.lru_cache(maxsize=4096)
def _plain_declarations(text: str, drop: frozenset[str]) -> tuple[tuple[str, str], ...]:
    return tuple(_declarations(text, _Scope("", set(), None), drop))


@functools.cache
def _tinycss2():
    """tinycss2, imported on first use: `sitegen --help` and a build without diagrams never load it."""
    import tinycss2

    return tinycss2


def _declarations(text: str, scope: _Scope, drop: frozenset[str]) -> list[tuple[str, str]]:
    """The allowed declarations of a declaration list, each value checked (comments are dropped)."""
    tc = _tinycss2()
    out = []
    for decl in tc.parse_declaration_list(text, skip_comments=True, skip_whitespace=True):
        if decl.type != "declaration":
            scope.drop("CSS that does not parse")  # or a nested at-rule: nothing we draw needs it
            continue
        prop = decl.lower_name
        if prop not in _CSS_PROPS or prop in drop:
            scope.drop(f"CSS property {prop}")
            continue
        clean = _css_value(prop, tc.serialize(decl.value), scope)
        if clean is not None:
            out.append((prop, clean + ("!important" if decl.important else "")))
        else:
            scope.drop(f"CSS value of {prop}")
    return out


def _scoped_stylesheet(css: str, scope: _Scope) -> str:
    """Rules from a renderer's <style>, each selector confined to this diagram; at-rules dropped."""
    tc = _tinycss2()
    rules: list[str] = []
    for node in tc.parse_stylesheet(css, skip_comments=True, skip_whitespace=True):
        if node.type == "at-rule" and node.lower_at_keyword == "import":
            scope.drop("CSS @import")
            break  # from its first attempt to load another sheet on, a sheet is hostile: the rest goes
        if node.type != "qualified-rule":
            scope.drop(f"CSS @{node.lower_at_keyword}" if node.type == "at-rule" else "CSS that does not parse")
            continue  # @font-face, @media …, and whatever did not parse
        selectors: list[list] = [[]]
        for token in node.prelude:  # a comma inside a string or :is(…) is a token of its own, not a split
            if token == ",":
                selectors.append([])
            else:
                selectors[-1].append(token)
        rule = _scoped_rule([tc.serialize(s) for s in selectors], tc.serialize(node.content), scope)
        if rule:
            rules.append(rule)
    return "".join(rules)


def _scoped_rule(selector_list: list[str], body: str, scope: _Scope) -> str | None:
    if "{" in body or not all(_SELECTOR_RE.match(s) for s in selector_list if s.strip()):
        scope.drop("CSS rule")
        return None
    decls = _css_declarations(body, scope)
    if scope.removed is not None:  # a file is a document of its own: its selectors stay as written
        kept = [" ".join(s.split()) for s in selector_list if s.strip()]
        return ",".join(kept) + "{" + ";".join(f"{p}:{v}" for p, v in decls) + "}" if kept and decls else None
    root_decls = [(p, v) for p, v in decls if p in _ROOT_PROPS]
    selectors = []
    for sel in selector_list:
        sel = " ".join(sel.split())
        # Sibling combinators reach out of the diagram (`#d ~ p`); nothing we render needs them.
        if not sel or re.search(r"[~+]", re.sub(r"\[[^\]]*\]|\([^)]*\)", "", sel)):
            continue
        sel = re.sub(r"#([\w-]+)", lambda m: "#" + (scope.ref(m[1]) or f"{scope.scope}-{m[1]}"), sel)
        if not sel.startswith(f"#{scope.scope}") or re.match(rf"#{re.escape(scope.scope)}[\w-]", sel):
            sel = f"#{scope.scope} {sel}"
        selectors.append(sel)
    # A rule on the diagram itself may not move or resize it over the page.
    own = [s for s in selectors if re.fullmatch(rf"#{re.escape(scope.scope)}(?:[.:\[][^ >]*)?", s)]
    inner = [s for s in selectors if s not in own]
    rules = []
    for group, body_decls in ((own, root_decls), (inner, decls)):
        if group and body_decls:
            rules.append(",".join(group) + "{" + ";".join(f"{p}:{v}" for p, v in body_decls) + "}")
    return "".join(rules) or None


_ROOT_PROPS = {
    "fill", "stroke", "color", "font-size", "font-weight", "font-style", "font-variant", "letter-spacing",
    "word-spacing", "text-transform", "direction", "text-anchor", "dominant-baseline", "line-height",
    "stroke-width", "stroke-linecap", "stroke-linejoin",
}
"""What the root <svg> may be styled with: type and paint, never position, size or visibility."""


def _attr_value(name: str, value: str, scope: _Scope) -> str | None:
    value = value.strip() if name not in ("d", "points") else value
    if name == "id":
        return scope.ref(value) if _ID_RE.match(value) else None
    if name == "href":
        if value.startswith("#") and scope.ref(value[1:]) is not None:
            return "#" + scope.ref(value[1:])  # type: ignore[operator]
        return None
    if name in ("aria-labelledby", "aria-describedby"):
        refs = [scope.ref(v) for v in value.split()]
        kept = [r for r in refs if r]
        return " ".join(kept) or None
    if name == "class":
        if _CLASS_LIST.match(value):
            return value
        kept = [c for c in value.split() if _CLASS_RE.match(c)]
        return " ".join(kept) or None
    if name == "style":
        decls = _css_declarations(value, scope)
        return ";".join(f"{p}:{v}" for p, v in decls) or None
    if "url(" in value.lower():
        if name not in _URL_ATTRS:
            return None
        return scope.url_value(value)
    if _BAD_VALUE.search(value) and name not in ("d", "points", "transform", "viewBox"):
        return None
    if name in ("d", "points", "transform", "viewBox") and re.search(r"[<>\"'&{}\\]|:", value):
        return None
    return value


_PLAIN_VALUE = re.compile(r"[\w .,%+#-]*\Z")
"""Values made only of these characters need no check and no escaping (the common case)."""
_SCOPED_ATTRS = {"id", "href", "aria-labelledby", "aria-describedby", "class", "style"}
_TAGS = {f"{{{SVG_NS}}}{t}": t for t in _ELEMENTS | _UNWRAP} | {t: t for t in _ELEMENTS | _UNWRAP}
_DATA_ATTR = re.compile(r"data-[a-z0-9-]{1,40}\Z")
_FILE_ATTRS = {"version", "baseProfile"}
"""Harmless attributes a standalone file may keep (a diagram's root is rebuilt, so it has no use for them)."""


def _text(s: str) -> str:
    return html.escape(s, quote=False) if ("&" in s or "<" in s or ">" in s) else s


def _serialise(el: ET.Element, scope: _Scope, out: list[str], stats: dict[str, int]) -> None:
    tag = _TAGS.get(el.tag) if isinstance(el.tag, str) else None
    if tag is None:
        stats["dropped"] += 1
        scope.drop(f"<{_local(el.tag)[1]}>" if isinstance(el.tag, str) else "markup")
        return
    if tag in _UNWRAP:
        scope.drop(f"<{tag}>")
        if el.text and el.text.strip():
            out.append(_text(el.text))
        for child in el:
            _serialise(child, scope, out, stats)
            if child.tail:
                out.append(_text(child.tail))
        return
    if tag == "style":
        css = _scoped_stylesheet("".join(el.itertext()), scope)
        if css:
            out.append(f"<style>{css}</style>")
        return
    parts = [f"<{tag}"]
    has_href = False
    for name, raw_value in el.attrib.items():
        if name[0] == "{":
            ans, name = _local(name)
            if ans == XML_NS and name == "space":
                if raw_value in ("preserve", "default"):
                    parts.append(f' xml:space="{raw_value}"')
                continue
            if not (ans == XLINK_NS and name == "href"):
                scope.drop(f"{name} on <{tag}>")
                continue
        if name not in _ATTRS and not _DATA_ATTR.match(name):
            if scope.removed is not None and name in _FILE_ATTRS and _PLAIN_VALUE.match(raw_value):
                parts.append(f' {name}="{raw_value}"')
                continue
            stats["attrs"] += 1
            scope.drop(f"{name} on <{tag}>")
            continue
        if name not in _SCOPED_ATTRS and _PLAIN_VALUE.match(raw_value):
            parts.append(f' {name}="{raw_value}"')
            continue
        value = _attr_value(name, raw_value, scope)
        if value is None:
            stats["attrs"] += 1
            if name == "href" or "url(" in raw_value.lower():
                scope.drop(f'{name}="{raw_value.strip()[:60]}" on <{tag}>')
            elif name != "style":  # a style left empty has had its declarations named already
                scope.drop(f"{name} on <{tag}>")
            continue
        has_href = has_href or name == "href"
        parts.append(f' {name}="{html.escape(value, quote=True)}"')
    if tag == "use" and not has_href:
        stats["dropped"] += 1
        scope.drop("<use> without a reference inside the file")
        return
    out.append("".join(parts))
    text = el.text if tag in _TEXT_ELEMENTS else None
    if not len(el) and not text:
        out.append("/>")
        return
    out.append(">")
    if text:
        out.append(_text(text))
    is_text = tag in _TEXT_ELEMENTS
    for child in el:
        _serialise(child, scope, out, stats)
        if is_text and child.tail:
            out.append(_text(child.tail))
    out.append(f"</{tag}>")


def _dark_css(scope: str, theme: str) -> str:
    """Remap the light palette to the dark one for the site's dark mode (screens only, never print)."""
    return _dark_css_template(theme).replace("\x00", scope)


@functools.lru_cache(maxsize=8)
def _dark_css_template(theme: str) -> str:
    scope = "\x00"
    if theme not in _PALETTES or theme == "dark":
        return ""
    light, dark = _PALETTES[theme], _PALETTES["dark"]
    rules: list[tuple[str, str]] = [("", f"color:{dark['fg']}"), (f'[fill="{light["fg"]}" i]', f"fill:{dark['fg']}")]
    done: set[tuple[str, str]] = set()
    for key in ("surface", "surface-alt", "border", "line", "fg", "muted", "accent", "bg"):
        for prop in ("fill", "stroke"):
            if (prop, light[key]) in done:
                continue
            done.add((prop, light[key]))
            # White text on coloured boxes is already readable: only shapes take the dark background.
            subject = ":not(text):not(tspan)" if key == "bg" else ""
            rules.append((f" {subject}[{prop}=\"{light[key]}\" i]", f"{prop}:{dark[key]}"))

    def sheet(prefix: str) -> str:
        return "".join(f"{prefix}#{scope}{sel}{{{decl}}}" for sel, decl in rules)

    return (
        sheet(':root[data-theme="dark"] ')
        + "@media screen and (prefers-color-scheme:dark){"
        + sheet(':root:not([data-theme="light"]) ')
        + "}"
    )


# Pele's palettes (mermaid_render.renderer.THEMES), copied so the HTML build never imports it.
_PALETTES = {
    "default": {"bg": "#FFFFFF", "fg": "#333333", "muted": "#666666", "line": "#333333", "surface": "#ECECFF",
                "surface-alt": "#FFFFDE", "border": "#9370DB", "accent": "#9370DB"},
    "dark": {"bg": "#1F2020", "fg": "#EEEEEE", "muted": "#BBBBBB", "line": "#CCCCCC", "surface": "#303640",
             "surface-alt": "#252A32", "border": "#8A9BB5", "accent": "#8AAEED"},
    "neutral": {"bg": "#FFFFFF", "fg": "#222222", "muted": "#666666", "line": "#444444", "surface": "#F3F3F3",
                "surface-alt": "#E6E6E6", "border": "#888888", "accent": "#555555"},
    "forest": {"bg": "#FFFFFF", "fg": "#153C20", "muted": "#53765A", "line": "#32583B", "surface": "#DDEED8",
               "surface-alt": "#EFF6E8", "border": "#528C50", "accent": "#528C50"},
}


def _default_title(root: ET.Element, fallback: str) -> str:
    for el in root.iter():
        cls = el.get("class", "")
        if "pele-title" in cls.split() or "titleText" in cls.split() or "chartTitleText" in cls.split():
            text = " ".join("".join(el.itertext()).split())
            if text:
                return text
    kind = root.get("aria-roledescription", "").split("-")[0].strip() or fallback
    kind = re.sub(r"([a-z])([A-Z])", r"\1 \2", kind)
    return f"{kind[:1].upper()}{kind[1:]} diagram" if kind else "Diagram"


def sanitize_svg(svg: str, scope: str, title: str = "", theme: str = "neutral", kind: str = "") -> str:
    """An allowlisted copy of a renderer's SVG: ids scoped, CSS scoped, role=img and a <title>."""
    if not isinstance(svg, str):
        raise DiagramError("diagram renderer returned no SVG")
    if len(svg) > MAX_SVG_CHARS:
        raise DiagramError(f"diagram SVG larger than {MAX_SVG_CHARS} characters")
    if re.search(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", svg, re.I):
        raise DiagramError("diagram SVG contains a DTD")
    svg = re.sub(r"^\s*<\?xml[^>]*\?>", "", svg)
    try:
        root = ET.fromstring(svg, parser=ET.XMLParser())
    except ET.ParseError as exc:
        raise DiagramError(f"diagram SVG could not be parsed: {exc}") from None
    if _local(root.tag) != (SVG_NS, "svg") and _local(root.tag) != ("", "svg"):
        raise DiagramError("diagram renderer did not return an <svg> element")
    ids = {el.get("id") for el in root.iter() if el.get("id") and _ID_RE.match(el.get("id", ""))}
    root_id = root.get("id")
    ids.discard(root_id)
    sc = _Scope(scope, ids, root_id)  # type: ignore[arg-type]

    own_title = ""
    desc_id = None
    for child in list(root):
        ns, tag = _local(child.tag)
        if tag == "title" and not own_title:
            own_title = " ".join("".join(child.itertext()).split())
            root.remove(child)
        elif tag == "desc" and child.get("id"):
            desc_id = sc.ref(child.get("id", ""))
    title = own_title or title or _default_title(root, kind)

    attrs = [f'xmlns="{SVG_NS}"', f'id="{scope}"', 'class="diagram-svg"']
    for name in ("viewBox", "width", "height", "preserveAspectRatio", "fill", "stroke"):
        value = root.get(name)
        if value is not None:
            clean = _attr_value(name, value, sc)
            if clean is not None:
                attrs.append(f'{name}="{html.escape(clean)}"')
    attrs.append('role="img"')
    attrs.append(f'aria-labelledby="{scope}-title"')
    if desc_id:
        attrs.append(f'aria-describedby="{desc_id}"')
    role_desc = root.get("aria-roledescription")
    if role_desc and re.fullmatch(r"[\w -]{1,40}", role_desc):
        attrs.append(f'aria-roledescription="{html.escape(role_desc)}"')
    # The root style keeps only what draws; the font stack is ours (CJK included).
    root_style = _css_declarations(root.get("style", ""), sc)
    decls = [(p, v) for p, v in root_style if p in _ROOT_PROPS and p != "color"]
    colour = next((m[0] for p, v in root_style if p == "color" and (m := re.match(r"#[0-9A-Fa-f]{3,8}", v))), None)
    if colour:
        attrs.append(f'color="{colour}"')
    size = re.match(r"\s*([\d.]+px)\b", next((v for p, v in root_style if p == "font"), ""))
    # Pele measured its labels at this size and weight: the page must not restyle them.
    decls = [(p, v) for p, v in decls if p not in ("font-size", "font-weight", "font-style")]
    decls += [("font-size", size[1] if size else "16px"), ("font-weight", "400"), ("font-style", "normal")]
    style = ";".join(f"{p}:{v}" for p, v in decls)
    style += f";font-family:{FONT_STACK}"
    attrs.append(f'style="{html.escape(style)}"')

    out = [f"<svg {' '.join(attrs)}>", f'<title id="{scope}-title">{html.escape(title, quote=False)}</title>']
    css = f"#{scope}{{max-width:100%;height:auto}}" + _dark_css(scope, theme)
    out.append(f"<style>{css}</style>")
    stats = {"dropped": 0, "attrs": 0}
    for child in root:  # stray text directly inside <svg> is never drawn, so it is not carried over
        _serialise(child, sc, out, stats)
    out.append("</svg>")
    return "".join(out)


# --- standalone SVG files -----------------------------------------------------------------

_DOCTYPE = re.compile(r"<!DOCTYPE(?:[^\[>]|\[.*?\])*>", re.I | re.S)


def sanitize_svg_file(data: bytes) -> tuple[bytes | None, list[str], tuple[int, int] | None]:
    """A project's SVG file held to the diagram allowlist: (what to publish, what was removed, where).

    The file itself, byte for byte, when nothing had to go; else an allowlisted copy (same drawing:
    viewBox, shapes, text, gradients, CSS); None when it cannot be read as SVG at all. Unlike a
    diagram, ids keep their names (a page may point at `icons.svg#arrow`) and CSS is not scoped:
    a file opened at its URL is a document of its own, so only what runs or fetches has to go.
    `where` is the (line, column) of a parse error.
    """
    removed: Counter[str] = Counter()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, ["the file is not UTF-8 text"], None
    if len(text) > MAX_SVG_CHARS:
        return None, [f"the file is larger than {MAX_SVG_CHARS} characters"], None
    def cut(m: re.Match) -> str:  # keep the newlines: a parse error is reported at the file's own line
        return "\n" * m[0].count("\n")

    body = re.sub(r"^\s*<\?xml[^>]*\?>", cut, text)
    if re.search(r"<!\s*(DOCTYPE|ENTITY|ELEMENT|ATTLIST)", body, re.I):
        removed["DTD"] += 1
        body = _DOCTYPE.sub(cut, body)
    if "<?" in body:
        removed["processing instruction"] += 1  # <?xml-stylesheet?> can load CSS or XSLT; the parser drops them
    try:
        root = ET.fromstring(body, parser=ET.XMLParser())
    except ET.ParseError as exc:
        line, col = exc.position
        return None, [f"the file could not be parsed ({str(exc).split(':')[0]})"], (line, col + 1)
    if _local(root.tag) not in ((SVG_NS, "svg"), ("", "svg")):
        return None, ["the file is not an <svg> document"], None
    ids = {el.get("id", "") for el in root.iter() if _ID_RE.match(el.get("id", ""))}
    out: list[str] = []
    _serialise(root, _Scope("", ids, None, removed), out, {"dropped": 0, "attrs": 0})
    if not removed:
        return data, [], None
    out[0] = out[0].replace("<svg", f'<svg xmlns="{SVG_NS}"', 1)
    return ("".join(out) + "\n").encode("utf-8"), [f"{what} ({n}x)" if n > 1 else what for what, n in sorted(removed.items())], None

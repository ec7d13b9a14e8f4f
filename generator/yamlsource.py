"""Strict, safe YAML loading that keeps line marks, and front-matter splitting.

Rules (see SECURITY-CASES YM-01..05): SafeLoader-based, YAML 1.2-style implicit types (only
true/false are booleans, no timestamps), duplicate keys rejected, aliases rejected, nesting
capped, explicit tags limited to the core ones. Every value keeps its (line, col) so schema
errors can name `file:line:col`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .diagnostics import Diagnostic, Location

MAX_DEPTH = 64
MAX_YAML_BYTES = 2 * 1024 * 1024

Path_ = tuple  # a key path such as ("funding", 0, "amount")


class YamlProblem(Exception):
    """A YAML error with a location relative to the YAML text."""

    def __init__(self, message: str, line: int | None, col: int | None = None, code: str = "yaml"):
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.code = code


class RawInt(int):
    """An int that remembers how it was written, so a text field can keep `01234`."""

    raw: str

    def __new__(cls, value: int, raw: str):
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class RawFloat(float):
    """A float that remembers how it was written, so a text field keeps `1.10`, never `1.1`."""

    raw: str

    def __new__(cls, value: float, raw: str):
        obj = super().__new__(cls, value)
        obj.raw = raw
        return obj


class _Resolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema resolvers: no yes/no/on/off booleans, no timestamps, no sexagesimals."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Resolver.add_implicit_resolver("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


class _Composer(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer, _Resolver
):
    """Builds a node tree, refusing aliases and deep nesting before anything is constructed."""

    def __init__(self, stream: str):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        _Resolver.__init__(self)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise YamlProblem(
                "YAML aliases are not allowed", event.start_mark.line + 1, event.start_mark.column + 1, "yaml-alias"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise YamlProblem(
                "YAML anchors and aliases are not allowed",
                event.start_mark.line + 1,
                event.start_mark.column + 1,
                "yaml-alias",
            )
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise YamlProblem(
                f"nesting deeper than {MAX_DEPTH} levels",
                event.start_mark.line + 1,
                event.start_mark.column + 1,
                "yaml-depth",
            )
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also knows sitegen's YAML 1.2 resolvers, so it quotes every string either reader
    would take for a number, boolean or null (`0E0`, `1.10`, `NO`, `on`, `~`)."""


for _first, _resolvers in _Resolver.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        _Dumper.add_implicit_resolver(_tag, _regexp, [_first])


_NEEDS_ESCAPES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Line breaks YAML folds (NEL, LS, PS) and control characters survive only double-quoted, escaped.
    style = '"' if _NEEDS_ESCAPES.search(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any) -> str:
    """YAML text that `parse_yaml` loads back to the same data (strings stay strings)."""
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, default_flow_style=False, width=1_000_000)


@dataclass
class YamlDoc:
    """Loaded YAML: plain Python data plus the (line, col) of every value and key."""

    data: Any
    marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[tuple, tuple[int, int]] = field(default_factory=dict)
    line_offset: int = 0

    def location(self, path: str, key_path: tuple) -> Location:
        """Where the value at key_path was written; falls back to the nearest parent."""
        kp = tuple(key_path)
        while kp:
            if kp in self.marks:
                line, col = self.marks[kp]
                return Location(path, line + self.line_offset, col)
            if kp in self.key_marks:
                line, col = self.key_marks[kp]
                return Location(path, line + self.line_offset, col)
            kp = kp[:-1]
        if () in self.marks:
            line, col = self.marks[()]
            return Location(path, line + self.line_offset, col)
        return Location(path, 1 + self.line_offset, 1)


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _scalar(node: ScalarNode) -> Any:
    tag = node.tag
    value = node.value
    if tag == "tag:yaml.org,2002:str":
        return value
    if tag == "tag:yaml.org,2002:null":
        return None
    if tag == "tag:yaml.org,2002:bool":
        if value in ("true", "True", "TRUE"):
            return True
        if value in ("false", "False", "FALSE"):
            return False
        raise YamlProblem(f"not a boolean: {value!r}", *_mark(node))
    if tag == "tag:yaml.org,2002:int":
        try:
            text = value.replace("_", "")
            if text.startswith("0o"):
                return RawInt(int(text[2:], 8), value)
            if text.startswith("0x"):
                return RawInt(int(text[2:], 16), value)
            return RawInt(int(text, 10), value)
        except ValueError:
            raise YamlProblem(f"not an integer: {value!r}", *_mark(node)) from None
    if tag == "tag:yaml.org,2002:float":
        low = value.lower()
        try:
            if low in (".inf", "+.inf"):
                return RawFloat(float("inf"), value)
            if low == "-.inf":
                return RawFloat(float("-inf"), value)
            if low == ".nan":
                return RawFloat(float("nan"), value)
            return RawFloat(float(value), value)
        except ValueError:
            raise YamlProblem(f"not a number: {value!r}", *_mark(node)) from None
    raise YamlProblem(f"unsupported YAML tag {tag}", *_mark(node), code="yaml-tag")


def _check_tag(node: Node) -> None:
    if node.tag not in _ALLOWED_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        raise YamlProblem(f"unsupported YAML tag {tag}", *_mark(node), code="yaml-tag")


def _construct(node: Node, path: tuple, doc: YamlDoc) -> Any:
    # Iterative descent is not needed: depth is already capped at MAX_DEPTH by the composer.
    _check_tag(node)
    doc.marks[path] = _mark(node)
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        return [_construct(child, path + (i,), doc) for i, child in enumerate(node.value)]
    if isinstance(node, MappingNode):
        out: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or (
                isinstance(key_node, ScalarNode) and key_node.value == "<<" and key_node.style is None
            ):
                raise YamlProblem("YAML merge keys (<<) are not allowed", *_mark(key_node), code="yaml-alias")
            if not isinstance(key_node, ScalarNode):
                raise YamlProblem("mapping keys must be plain text", *_mark(key_node))
            _check_tag(key_node)
            key = key_node.value if key_node.tag != "tag:yaml.org,2002:null" else None
            if key is None:
                raise YamlProblem("empty mapping key", *_mark(key_node))
            key = str(key)
            line, col = _mark(key_node)
            if key in out:
                raise YamlProblem(
                    f"duplicate key '{key}' (first defined at line {first_line[key] + doc.line_offset})",
                    line,
                    col,
                    code="yaml-duplicate-key",
                )
            first_line[key] = line
            doc.key_marks[path + (key,)] = (line, col)
            out[key] = _construct(value_node, path + (key,), doc)
        return out
    raise YamlProblem("unsupported YAML node", *_mark(node))


def parse_yaml(text: str, line_offset: int = 0) -> YamlDoc:
    """Parse one YAML document strictly; raises YamlProblem (lines relative to `text`)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
        raise YamlProblem(f"YAML larger than {MAX_YAML_BYTES // 1024 // 1024} MiB", 1, 1, "yaml-size")
    doc = YamlDoc(data=None, line_offset=line_offset)
    loader = _Composer(text)
    try:
        node = loader.get_single_node()
    except YamlProblem:
        raise
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and ("end of stream" in (exc.problem or "") or "<stream end>" in (exc.problem or "")):
            # An unclosed quote or bracket: point at where it was opened, not at the end.
            mark = exc.context_mark
        msg = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            msg = f"{exc.problem} ({exc.context})"
        raise YamlProblem(msg, mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(str(exc), None) from None
    except RecursionError:
        raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", 1, 1, "yaml-depth") from None
    finally:
        loader.dispose()
    if node is None:
        doc.data = None
        return doc
    doc.data = _construct(node, (), doc)
    return doc


def load_yaml(text: str, path: str, line_offset: int = 0) -> tuple[YamlDoc | None, list[Diagnostic]]:
    """Parse YAML from a file; returns the doc or a located diagnostic."""
    try:
        return parse_yaml(text, line_offset), []
    except YamlProblem as p:
        loc = Location(path, (p.line + line_offset) if p.line is not None else None, p.col)
        return None, [Diagnostic("error", p.code, p.message, loc)]


@dataclass
class FrontMatterSplit:
    """A Markdown file cut into its front matter and body, with the body's first line number."""

    yaml_text: str | None
    body: str
    body_line: int  # 1-based line of the body's first line in the file
    yaml_line: int = 2  # 1-based line where the YAML text starts


_FENCE = re.compile(r"^---[ \t]*$")


def split_front_matter(text: str, path: str) -> tuple[FrontMatterSplit | None, list[Diagnostic]]:
    """Split `---` front matter from Markdown; BOM and CRLF are accepted."""
    if text.startswith("\ufeff"):
        text = text[1:]
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if not lines or not _FENCE.match(lines[0]):
        return FrontMatterSplit(None, text, 1), []
    for i in range(1, len(lines)):
        if _FENCE.match(lines[i]) or lines[i].rstrip() == "...":
            yaml_text = "\n".join(lines[1:i]) + "\n"
            body = "\n".join(lines[i + 1 :])
            return FrontMatterSplit(yaml_text, body, i + 2, 2), []
    return None, [Diagnostic("error", "front-matter", "front matter not closed (missing '---')", Location(path, 1))]

"""Chat tokens: `<|…|>` markers removed, prompt turns dropped, turn boundaries marked."""

from __future__ import annotations

import re
from collections import Counter

from ...diagnostics import Diagnostic, Location
from ...residue import CHAT_TOKEN
from .structure import _AUTHOR_LINE
from .text import _FENCE_OPEN, _HEADING, Change, Line, _span, fence_mask


_ROLE_WORD = re.compile(r"^\s*(user|assistant|system|human|bot|model|gpt)\b[ \t]*:?", re.I)
_QUOTES = {'"': '"', "'": "'", "`": "`", "“": "”", "「": "」", "‘": "’"}

_USER_TOKENS = {"user", "system", "human", "prompter", "observation"}
_ASSISTANT_TOKENS = {"assistant", "bot", "gpt", "model", "end_of_directive", "endofdirective"}
_END_TOKENS = {"im_end", "end", "endoftext", "eot_id", "eos", "end_of_turn", "end_of_text", "end▁of▁sentence"}


def _token_kind(name: str) -> str:
    n = name.strip().lower().replace(" ", "_")
    if n in _USER_TOKENS:
        return "user"
    if n in _ASSISTANT_TOKENS:
        return "assistant"
    if n == "im_start":
        return "start"
    if n in _END_TOKENS or n.startswith("end"):
        return "end"
    return "other"


def _quoted(line: str, start: int, end: int, in_fence: bool) -> bool:
    """A token written as content: inside quotes or an inline code span (`"<|endoftext|>"`)."""
    before = line[start - 1] if start > 0 else ""
    after = line[end] if end < len(line) else ""
    if before in _QUOTES and after == _QUOTES[before]:
        return True
    return not in_fence and line[:start].count("`") % 2 == 1


def _prompt_like(lines: list[Line]) -> bool:
    """A short turn without headings or code: a user prompt or a directive, not article text."""
    texts = [ln.text for ln in lines]
    if any(_HEADING.match(t) or _FENCE_OPEN.match(t) or _AUTHOR_LINE.match(t) for t in texts):
        return False
    return len("".join(texts).strip()) <= 600


def strip_chat_tokens(lines: list[Line]) -> tuple[list[Line], list[Change], list[Diagnostic]]:
    """Remove every `<|…|>` token; drop prompt turns; mark turn boundaries with `cut`."""
    mask = fence_mask([CHAT_TOKEN.sub("", ln.text) for ln in lines])
    out: list[list] = []  # [text, src, cut] — mutable while a line is assembled
    changes: list[Change] = []
    warnings: list[Diagnostic] = []
    seg_start = (0, 0)
    seg_role = "unknown"
    pending_cut = False
    removed: Counter[str] = Counter()
    first_line: dict[str, int] = {}

    def close_segment(drop_if_prompt: bool, next_role: str) -> None:
        nonlocal seg_start, seg_role
        li, off = seg_start
        if drop_if_prompt and li < len(out):
            seg = [Line(out[li][0][off:], out[li][1])] + [Line(t, s) for t, s, _ in out[li + 1 :]]
            text = "".join(ln.text for ln in seg).strip()
            if text and _prompt_like(seg):
                first, last = _span(ln for ln in seg if ln.text.strip())
                preview = re.sub(r"\s+", " ", text)[:40] + ("…" if len(text) > 40 else "")
                changes.append(Change("removed", f"prompt turn {preview!r}", first, last))
                out[li][0] = out[li][0][:off]
                del out[li + 1 :]
        seg_role = next_role
        seg_start = (len(out) - 1, len(out[-1][0])) if out else (0, 0)

    for ln, in_fence in zip(lines, mask):
        out.append(["", ln.src, pending_cut])
        pending_cut = False
        pos = 0
        text = ln.text
        for m in CHAT_TOKEN.finditer(text):
            if m.start() < pos:
                continue
            if _quoted(text, m.start(), m.end(), in_fence):
                warnings.append(
                    Diagnostic(
                        "warning",
                        "import-token",
                        f"kept {m[0]}: it is written as text ({'in code' if in_fence else 'quoted'}); `sitegen check` will still report it",
                        Location("", ln.src, m.start() + 1),
                    )
                )
                continue
            out[-1][0] += text[pos : m.start()]
            pos = m.end()
            removed[m[0]] += 1
            first_line.setdefault(m[0], ln.src)
            if in_fence:
                warnings.append(
                    Diagnostic("warning", "import-token", f"removed chat token {m[0]} inside a code block", Location("", ln.src, m.start() + 1))
                )
            kind = _token_kind(m[1])
            if kind == "start":
                role = _ROLE_WORD.match(text[pos:])
                kind = "unknown"
                if role:
                    kind = "user" if role[1].lower() in ("user", "system", "human") else "assistant"
                    pos += role.end()
            directive = m[1].strip().lower() in ("end_of_directive", "endofdirective")
            if kind == "user":
                close_segment(seg_role == "user", "user")
            elif kind == "assistant":
                close_segment(seg_role in ("user", "unknown") or directive, "assistant")
            elif kind == "end":
                close_segment(seg_role == "user", "unknown")
            elif kind == "unknown":
                close_segment(False, "unknown")
            rest = text[pos:]
            before = out[-1][0]
            # Mid-sentence a stray token is simply cut out; a turn token or a following block ends the line.
            if kind == "other" and before.strip() and rest.strip() and not re.match(r"\s*(#|>|```|~~~|\||[-*+] |\d+\. )", rest):
                if before[-1:].isascii() and before[-1:].isalnum() and rest[:1].isascii() and rest[:1].isalnum():
                    out[-1][0] = before + " "
                continue
            out[-1][0] = before.rstrip()
            if rest.strip():
                if out[-1][0].strip():
                    out.append(["", ln.src, True])
                else:
                    out[-1][2] = True
                pos += len(rest) - len(rest.lstrip())
            else:
                pending_cut = True
        out[-1][0] += text[pos:]
    if seg_role == "user":
        close_segment(True, "unknown")
    for tok, n in removed.items():
        changes.append(Change("removed", f"chat token {tok}" + (f" ×{n}" if n > 1 else ""), first_line[tok]))
    result = [Line(t, s, c) for t, s, c in out]
    return result, sorted(changes, key=lambda c: c.first or 0), warnings

"""Language-model residue: the chat and end-of-text tokens and the chat-assistant sign-offs that
`import` removes, `check` reports and draft hygiene strips.

The three users look for the same residue with different tolerances, and each keeps its own:
`check` reports every `<|…|>` marker of up to 40 characters as it is written; draft hygiene
strips up to 64; `import` also accepts full-width bars and spaces inside
(`<｜end▁of▁sentence｜>`, `<| user |>`) and captures the name to tell turns apart. The sign-off lists differ on purpose too: `check` warns on a narrow list found
anywhere in a text, `import` drops a broader one, but only from the last sentences of an article.
"""

from __future__ import annotations

import re


def token_pattern(longest: int) -> re.Pattern[str]:
    """`<|name|>` with at most `longest` characters between the bars, none of them a bar, `<`, `>` or a newline."""
    return re.compile(rf"<\|[^|<>\n]{{0,{longest}}}\|>")


LM_TOKEN = token_pattern(40)
"""Chat and end-of-text markers of language models: <|endoftext|>, <|user|>, <|im_sep|>, <|end_of_directive|> …"""

DRAFT_TOKEN = token_pattern(64)
"""The same markers as draft hygiene strips them from raw model output."""

CHAT_TOKEN = re.compile(r"<[|｜]\s*([A-Za-z][\w.:/ ▁-]{0,40}?)\s*[|｜]>")
"""Chat tokens as the importer finds them (ASCII or full-width bars, spaces inside); group 1 is the name."""

SIGN_OFFS = re.compile(
    r"(希望(本文|这篇文章|以上内容)?对(您|你)[^。\n]{0,30}(有所)?(帮助|启发)"
    r"|如(有|需)(任何|进一步)?(问题|讨论|咨询)[^。\n]{0,20}(随时|欢迎)"
    r"|欢迎随时(提问|联系|交流)"
    r"|以上就是本文的(完整)?内容"
    r"|作为一?个?\s*(AI|人工智能)\s*(语言)?模型"
    r"|\bI hope (this|that) (helps|was helpful)"
    r"|\bfeel free to (ask|reach out)"
    r"|\bAs an AI language model\b"
    r"|\bLet me know if you (have|need) (any )?(further |more )?(questions|help)\b)",
    re.I,
)
"""Lines a chat assistant writes at the end of an answer, not an analyst at the end of a report."""

CLOSING_LINE = re.compile(
    r"以上(?:就是|便是|是|即为)(?:本文|全部|文章|我的|关于)|希望(?:本文|这篇文章|这篇|以上|这些|我的|对您|对你|能|可以|您|你).{0,40}(?:帮助|启发|有用|收获|参考|喜欢|满意)"
    r"|(?:感谢|谢谢)(?:您|你|大家)?的?(?:阅读|关注|耐心|支持)|(?:如|若|如果)(?:您|你)?(?:还)?有(?:任何|其他)?(?:问题|疑问|建议|需要)"
    r"|如需(?:进一步|更多)|欢迎(?:随时|在评论区|大家|您)?(?:提问|留言|交流|讨论|指正|联系|反馈)|祝(?:您|你|大家)|期待(?:与您|您的|你的)|请随时"
    r"|\b(?:if|should) you have any (?:further |other |more |additional )?(?:questions|comments|feedback|thoughts|suggestions)"
    r"|\bi hope (?:this|that|you)|\bhope (?:this|it) helps|\bthanks? (?:you )?for (?:reading|your)|\bfeel free to|\blet me know"
    r"|\bhappy (?:coding|learning|reading)|\b(?:please )?(?:don't|do not) hesitate to|\bis there anything else|\bi'd be (?:happy|glad) to"
    r"|\bgood luck\b|\benjoy(?: reading)?!",
    re.I,
)
"""A closing chat sentence the importer drops from the end of an article ("希望这篇文章对您有帮助", "If you have any questions…")."""

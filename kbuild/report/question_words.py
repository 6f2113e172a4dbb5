"""Which kind of question a question is, by its first interrogative: what, who, when, where, which,
why, how, or other.

English questions are read word by word (`whom` and `whose` count as `who`; `how many`, `how much`
as `how`). Chinese questions have no spaces: a short list of interrogatives (什么 what, 谁 who,
什么时候 when, 哪里 where, 哪个 which, 为什么 why, 怎么 how, ...) maps into the same eight kinds, so a
CMRC report is broken down like a SQuAD one; 几 before a measure word (几位, 几年) is `how` (many).
At one position the longest word wins (什么时候 is `when`, not `what`); across positions the first
one does ("In which year did what happen?" is `which`). A question with none of these is `other`
(12 of CMRC 2018's 3,219 dev questions, 94 of SQuAD v1.1's 10,570).
"""

from __future__ import annotations

import re

KINDS = ("what", "who", "when", "where", "which", "why", "how", "other")
OTHER = "other"

ENGLISH = {"what": ("what",), "who": ("who", "whom", "whose"), "when": ("when",), "where": ("where",),
           "which": ("which",), "why": ("why",), "how": ("how",)}
CHINESE = {
    "when": ("什么时候", "何时", "几时", "哪一年", "哪年"),
    "where": ("哪里", "哪儿", "何处", "何地"),
    "who": ("哪位", "谁"),
    "why": ("为什么", "为何"),
    # 几 before a measure word asks how many (几号, 几位, 几年); not in 几乎 (almost), 几何, 几内亚.
    "how": ("怎么", "怎样", "如何", "多少", "多久", "多远", "多大", "多高", "多长", "几(?![乎何内])"),
    "which": ("哪个", "哪些", "哪种", "哪"),
    "what": ("什么", "啥"),
}
"""Regular expressions, kind by kind."""

# At one position the first alternative wins: kinds whose words extend another kind's (什么时候 and
# 什么, 哪里 and 哪) come first. Chinese words carry no \b: a Chinese character is a word character,
# so 谁 inside 是谁 would never stand between boundaries.
_ORDER = ("when", "where", "who", "why", "how", "which", "what")
_PATTERN = re.compile("|".join(
    f"(?P<{kind}>" + "|".join([*(rf"\b{word}\b" for word in ENGLISH[kind]), *CHINESE[kind]]) + ")"
    for kind in _ORDER), re.IGNORECASE)


def question_kind(question: str) -> str:
    """The kind of the question's first interrogative (one of `KINDS`)."""
    found = _PATTERN.search(question)
    return found.lastgroup if found is not None and found.lastgroup else OTHER

"""Which kind of question a question is, by its first interrogative: what, who, when, where, which,
why, how, or other.

English questions are read word by word (`whom` and `whose` count as `who`; `how many`, `how much`
as `how`). Chinese questions have no spaces: a short list of interrogatives (什么 what, 谁 who,
什么时候 when, 哪里 where, 哪个 which, 为什么 why, 怎么 how, ...) maps into the same eight kinds, so a
CMRC report is broken down like a SQuAD one. At one position the longest word wins (什么时候 is
`when`, not `what`); across positions the first one does ("In which year did what happen?" is
`which`). A question with none of these is `other`.
"""

from __future__ import annotations

import re

KINDS = ("what", "who", "when", "where", "which", "why", "how", "other")
OTHER = "other"

ENGLISH = {"what": "what", "who": "who", "whom": "who", "whose": "who", "when": "when", "where": "where",
           "which": "which", "why": "why", "how": "how"}
CHINESE = {
    "什么时候": "when", "何时": "when", "几时": "when", "哪一年": "when", "哪年": "when",
    "哪里": "where", "哪儿": "where", "何处": "where", "何地": "where",
    "哪位": "who", "谁": "who",
    "哪个": "which", "哪些": "which", "哪种": "which", "哪": "which",
    "为什么": "why", "为何": "why",
    "怎么": "how", "怎样": "how", "如何": "how", "多少": "how", "多久": "how", "几个": "how",
    "什么": "what", "啥": "what",
}

# Chinese words carry no \b: a Chinese character is a word character, so 谁 inside 是谁 would never
# stand between boundaries. Longest first, so the alternation prefers 什么时候 to 什么 at one position.
_PATTERN = re.compile("|".join([rf"\b{word}\b" for word in ENGLISH]
                               + sorted(CHINESE, key=len, reverse=True)), re.IGNORECASE)


def question_kind(question: str) -> str:
    """The kind of the question's first interrogative (one of `KINDS`)."""
    found = _PATTERN.search(question)
    if found is None:
        return OTHER
    word = found.group(0).lower()
    return ENGLISH.get(word) or CHINESE[word]

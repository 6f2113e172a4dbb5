"""Built-in generated datasets: `data: {builtin: NAME}` trains without any file.

They exist so that a quick start, the tests and the benchmarks run anywhere with no download, and
always on the same data: every generator uses a fixed seed of its own, never the spec's, so two runs
with different `seed:` differ in initialisation and shuffling but not in what they learn from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from functools import lru_cache

from kbuild.data.example import Example, ReadResult
from kbuild.errors import DataError
from kbuild.registry import Registry

Splits = dict[str, tuple[Example, ...]]

BUILTINS: Registry[Callable[[], Splits]] = Registry("builtin dataset")


def load_builtin(name: str, limit: int | None = None) -> dict[str, ReadResult]:
    """The named dataset's splits (`train`, `valid`, `test`), each capped at `limit` examples."""
    try:
        generate = BUILTINS.get(name)
    except KeyError as error:
        raise DataError(f"data.builtin: {error.args[0]}") from None
    return {
        split: ReadResult(list(examples[:limit]), 0, f"<builtin:{name}>/{split}")
        for split, examples in generate().items()
    }


# --- sentiment -------------------------------------------------------------------------------
# English movie-review sentences in SST-2's style (lower case, punctuation split off by spaces).
# A bag of words alone cannot solve it: negation flips an adjective ("not good" is negative,
# "never boring" positive), the clause after "but" or after an "although ..." clause decides the
# label, and 3 % of labels are flipped, so no model reaches 100 %.

_SUBJECTS = (
    ("the film", "is"), ("this movie", "is"), ("the acting", "is"), ("the plot", "is"),
    ("the script", "is"), ("the soundtrack", "is"), ("the ending", "is"), ("the dialogue", "is"),
    ("the cast", "is"), ("the story", "is"), ("the cinematography", "is"), ("the pacing", "is"),
    ("this sequel", "is"), ("the premise", "is"), ("the humor", "is"), ("the direction", "is"),
    ("the characters", "are"), ("the performances", "are"), ("the jokes", "are"),
    ("the effects", "are"),
)  # fmt: skip
_ADJECTIVES = {
    "positive": (
        "good", "great", "wonderful", "brilliant", "charming", "moving", "funny", "delightful",
        "superb", "engaging", "beautiful", "clever", "gripping", "memorable", "heartfelt",
        "inventive", "solid", "refreshing", "witty", "touching",
    ),
    "negative": (
        "bad", "awful", "boring", "dull", "tedious", "clumsy", "bland", "predictable",
        "forgettable", "messy", "painful", "lifeless", "shallow", "terrible", "flat", "tiresome",
        "weak", "pointless", "silly", "hollow",
    ),
}  # fmt: skip
_VERBS = {  # first-person verdicts, used as "<verb> <subject>"
    "positive": ("i loved", "i enjoyed", "i adored", "i admired", "we appreciated", "i savored"),
    "negative": ("i hated", "i disliked", "i resented", "we endured", "i regretted", "i loathed"),
}
_BARE_VERBS = {  # used as "i did n't <verb> <subject>", which flips them
    "positive": ("enjoy", "like", "love", "admire"),
    "negative": ("hate", "mind", "dislike", "regret"),
}
_NOUNS = ("film", "movie", "story", "experience", "picture", "drama", "comedy", "thriller")
_INTENSIFIERS = ("very", "really", "truly", "remarkably", "incredibly", "quite", "rather", "so")
_NEGATORS = ("not", "never", "hardly", "not at all", "far from")
_FILLERS = (
    "honestly ,", "overall ,", "in the end ,", "frankly ,", "to be fair ,", "for the most part ,",
    "at times", "by the second hour ,", "as expected ,", "on the whole ,",
)  # fmt: skip
_SPLIT_SIZES = (("train", 4000), ("valid", 500), ("test", 500))
_LABEL_NOISE = 0.03
_SEED = 20240611


def _other(polarity: str) -> str:
    return "negative" if polarity == "positive" else "positive"


def _adjective_phrase(rng: random.Random, polarity: str) -> str:
    adjective = rng.choice(_ADJECTIVES[polarity])
    return f"{rng.choice(_INTENSIFIERS)} {adjective}" if rng.random() < 0.35 else adjective


def _clause(rng: random.Random, polarity: str) -> str:
    """One clause that reads as `polarity`."""
    subject, be = rng.choice(_SUBJECTS)
    form = rng.random()
    if form < 0.40:
        return f"{subject} {be} {_adjective_phrase(rng, polarity)}"
    if form < 0.60:  # negation flips the adjective
        return f"{subject} {be} {rng.choice(_NEGATORS)} {_adjective_phrase(rng, _other(polarity))}"
    if form < 0.75:
        return f"{rng.choice(_VERBS[polarity])} {subject}"
    if form < 0.85:
        return f"i did n't {rng.choice(_BARE_VERBS[_other(polarity)])} {subject}"
    article = "an" if (adjective := _adjective_phrase(rng, polarity))[0] in "aeiou" else "a"
    return f"it is {article} {adjective} {rng.choice(_NOUNS)}"


def _sentence(rng: random.Random, polarity: str) -> str:
    """A sentence whose overall sentiment is `polarity`."""
    form = rng.random()
    if form < 0.35:
        body = _clause(rng, polarity)
    elif form < 0.50:
        body = f"{rng.choice(_FILLERS)} {_clause(rng, polarity)}"
    elif form < 0.72:  # the clause after "but" decides
        body = f"{_clause(rng, _other(polarity))} , but {_clause(rng, polarity)}"
    elif form < 0.84:
        body = f"although {_clause(rng, _other(polarity))} , {_clause(rng, polarity)}"
    else:
        body = f"{_clause(rng, polarity)} and {_clause(rng, polarity)}"
    return f"{body} {rng.choice(('.', '.', '.', '!'))}"


@BUILTINS.register("sentiment")
@lru_cache(maxsize=1)
def sentiment() -> Splits:
    """4,000 / 500 / 500 distinct English review sentences labelled `negative` / `positive`.

    Labels are balanced by construction (each sentence is written for a label drawn 50/50), then
    3 % are flipped as noise.
    """
    rng = random.Random(_SEED)
    seen: set[str] = set()
    splits: Splits = {}
    for split, size in _SPLIT_SIZES:
        examples = []
        while len(examples) < size:
            polarity = rng.choice(("negative", "positive"))
            text = _sentence(rng, polarity)
            if text in seen:
                continue
            seen.add(text)
            label = _other(polarity) if rng.random() < _LABEL_NOISE else polarity
            examples.append(Example(text, label, len(examples) + 1))
        splits[split] = tuple(examples)
    return splits

"""`model.embedding.pretrained`: the token embeddings start from word vectors (word2vec/GloVe)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kbuild.training.extensions.base import Extension, RunStart


class WordVectors(Extension):
    """Overwrites the rows of the vocabulary's words the vectors file has; reports the coverage.

    A resumed run that kept its vocabulary skips it: its embeddings come from the checkpoint."""

    def __init__(self, start: RunStart):
        super().__init__(start)
        self.vocabulary: list[str] = []
        self.report: dict | None = None

    def prepare(self, bundle: Any) -> Any:
        self.vocabulary = bundle.tokenizer.vocabulary
        return bundle

    def adjust(self, model: Any) -> None:
        embedding = self.start.spec.model.embedding
        if embedding.pretrained is None or self.start.reuses_assets:
            return
        from kbuild.data.tokenizers import SPECIAL_TOKENS
        from kbuild.data.vectors import load_vectors
        from kbuild.model import set_token_vectors

        found = load_vectors(embedding.pretrained, self.vocabulary, embedding.dim, skip=len(SPECIAL_TOKENS))
        set_token_vectors(model, found.ids, found.vectors)
        self.start.log(f"pretrained vectors: {len(found.ids):,} of {found.vocabulary_size:,} vocabulary words found "
                       f"({found.coverage:.1%}) in {found.source}; the rest start random"
                       f"{'' if embedding.trainable else '; embeddings frozen'}")
        self.report = {"file": found.source, "found": len(found.ids), "coverage": round(found.coverage, 6)}

    def results(self, metrics: dict, best: Callable[[], Any]) -> dict:
        return {"pretrained_vectors": self.report}

"""VADER (Hutto & Gilbert 2014): a rule-based lexicon, no training. P(positive) = (compound + 1) / 2.

VADER's cost grows with the square of a text's length, so a long review is cut to
its head and tail (as for BERT: the verdict often sits in the closing lines); IMDB reviews average 1.3 kB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from vaderSentiment import vaderSentiment as vader_module
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from core.explain import Explanation
from core.models import write_manifest

KIND = "vader"
HEAD_CHARS, TAIL_CHARS = 1_500, 3_500


def head_and_tail(text: str) -> str:
    return text if len(text) <= HEAD_CHARS + TAIL_CHARS else text[:HEAD_CHARS] + " ... " + text[-TAIL_CHARS:]


class Vader:
    kind = KIND

    def __init__(self) -> None:
        self.analyzer = SentimentIntensityAnalyzer()

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        compound = [self.analyzer.polarity_scores(head_and_tail(t))["compound"] for t in texts]
        return (np.asarray(compound, dtype=np.float64) + 1.0) / 2.0

    def explain(self, texts: list[str]) -> list[Explanation]:
        """Each word's valence after VADER's own rules (negation, boosters, 'but', capitals), as its
        polarity_scores computes them; P(positive) - 0.5 is shared out in proportion to those valences
        (punctuation's emphasis scales them all), so the weights add up to P(text) - P(empty review)."""
        out = []
        for text in texts:
            cut = head_and_tail(text)
            words, valences = self._valences(cut)
            p = float((self.analyzer.polarity_scores(cut)["compound"] + 1.0) / 2.0)
            total = sum(valences)
            spans, at = [], 0
            for word, valence in zip(words, valences, strict=True):
                found = text.find(word, at)  # the words in order, as VADER split them
                if found < 0:
                    continue  # an emoji VADER replaced by its description
                at = found + len(word)
                if valence and total:
                    spans.append((found, at, float((p - 0.5) * valence / total)))
            out.append(Explanation(spans, p, 0.5, "VADER's valences after its rules"))
        return out

    def _valences(self, text: str) -> tuple[list[str], list[float]]:
        """VADER's words and each one's valence after its rules (polarity_scores' loop, without the sum)."""
        analyzer = self.analyzer
        sentitext = vader_module.SentiText(text)
        words = sentitext.words_and_emoticons
        sentiments: list[float] = []
        for i, item in enumerate(words):
            if item.lower() in vader_module.BOOSTER_DICT or (
                    i < len(words) - 1 and item.lower() == "kind" and words[i + 1].lower() == "of"):
                sentiments.append(0)
                continue
            sentiments = analyzer.sentiment_valence(0, sentitext, item, i, sentiments)
        return words, [float(v) for v in analyzer._but_check(words, sentiments)]

    def n_params(self) -> int:
        return len(self.analyzer.lexicon)  # lexicon entries, each one valence

    def bytes_on_disk(self) -> int:
        """The lexicon and emoji files the analyzer reads from its package."""
        folder = Path(vader_module.__file__).parent
        return sum(f.stat().st_size for f in (folder / "vader_lexicon.txt", folder / "emoji_utf8_lexicon.txt")
                   if f.is_file())

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print) -> tuple[Vader, list[dict], dict]:
        model = cls()
        val_acc = float(((model.predict_proba(list(val["text"])) >= 0.5) == val["y"]).mean())
        progress(f"vader: validation accuracy {val_acc:.4f} (nothing to train)")
        return model, [{"epoch": 1, "val_acc": val_acc, "seconds": 0.0}], {}

    def save(self, directory: Path) -> None:
        write_manifest(Path(directory), KIND)

    @classmethod
    def load(cls, directory: Path) -> Vader:
        return cls()

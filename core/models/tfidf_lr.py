"""TF-IDF (word 1-2 grams) + logistic regression: the classical baseline a deep model must beat.

Fitting uses scikit-learn. Scoring does the same arithmetic with Arrow's vectorised string kernels and numpy
instead of scikit-learn's per-token Python loop (same probabilities to 1e-6; a test checks this), on two
threads, since Arrow releases the GIL. The 400k-term vocabulary is never hashed per call: at load time each
word of the vocabulary gets an id, unigram terms become a word id -> column table and bigram terms a sorted
array of (first word id, second word id) keys. Per chunk only the chunk's own distinct tokens are hashed,
the vocabulary's words are probed against them, and bigrams are found with a binary search.
Saved without pickle: vocabulary as JSON (terms in column order), idf / coef as .npy (allow_pickle=False).
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from scipy.special import expit
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from core.explain import Explanation
from core.models import write_manifest

KIND = "tfidf-lr"
TOKEN_SPLIT = r"[^\pL\pN_]+"  # scikit-learn's token_pattern \b\w\w+\b, as a split on non-word characters
THREADS = 2
SKLEARN_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # TfidfVectorizer's token_pattern, for the words' spans


@dataclass
class TfidfConfig:
    ngram_max: int = 2
    min_df: int = 2
    max_df: float = 0.9
    max_features: int = 400_000
    sublinear_tf: bool = True
    c_grid: tuple[float, ...] = (2.0, 8.0, 32.0)  # chosen on the validation split


PRESETS = {"quick": TfidfConfig(c_grid=(8.0,)), "full": TfidfConfig()}


def _vectorizer(cfg: TfidfConfig, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(ngram_range=(1, cfg.ngram_max), min_df=cfg.min_df, max_df=cfg.max_df,
                           max_features=cfg.max_features, sublinear_tf=cfg.sublinear_tf, dtype=np.float32,
                           vocabulary=vocabulary)


class TfidfLR:
    kind = KIND

    def __init__(self, vectorizer: TfidfVectorizer, coef: np.ndarray, intercept: float, cfg: TfidfConfig):
        self.vectorizer, self.coef, self.intercept, self.cfg = vectorizer, coef, float(intercept), cfg
        self.terms = pa.array(sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get))
        self.idf = vectorizer.idf_.astype(np.float64)
        self.weights = coef.astype(np.float64)
        self._index_terms()

    def _index_terms(self) -> None:
        """words (distinct words of all terms), unigram_col[word id], bigram keys -> columns (sorted)."""
        parts = pc.split_pattern(self.terms, " ")  # "not good" -> ["not", "good"]
        n_words = pc.list_value_length(parts).to_numpy()
        if n_words.max(initial=1) > 2:
            raise ValueError("the fast scorer handles 1-2 grams only")
        encoded = parts.flatten().dictionary_encode()
        self.words = encoded.dictionary
        word_ids = encoded.indices.to_numpy().astype(np.int64)
        first = pc.list_parent_indices(parts).to_numpy()  # term of each word
        starts = np.flatnonzero(np.r_[True, first[1:] != first[:-1]])  # first word of each term
        uni = np.flatnonzero(n_words == 1)
        self.unigram_col = np.full(len(self.words), -1, dtype=np.int64)
        self.unigram_col[word_ids[starts[uni]]] = uni
        bi = np.flatnonzero(n_words == 2)
        keys = word_ids[starts[bi]] * len(self.words) + word_ids[starts[bi] + 1]
        order = np.argsort(keys)
        self.bigram_keys, self.bigram_col = keys[order], bi[order]

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        if len(texts) < 2 * THREADS:
            return self._predict(texts)
        parts = np.array_split(np.arange(len(texts)), THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            return np.concatenate(list(pool.map(lambda idx: self._predict([texts[i] for i in idx]), parts)))

    def predict_proba_sklearn(self, texts: list[str]) -> np.ndarray:
        """The reference path (scikit-learn's transform), kept to check the fast one against."""
        x = self.vectorizer.transform(texts)  # (n, vocab) sparse
        return expit(x @ self.coef + self.intercept).astype(np.float64)

    def _predict(self, texts: list[str]) -> np.ndarray:
        tokens = pc.split_pattern_regex(pc.utf8_lower(pa.array(texts, type=pa.string())), TOKEN_SPLIT)
        flat, doc = tokens.flatten(), pc.list_parent_indices(tokens).to_numpy()
        keep = pc.greater_equal(pc.utf8_length(flat), 2)  # tokens of 2+ characters, as in scikit-learn
        flat, doc = flat.filter(keep), doc[keep.to_numpy(zero_copy_only=False)]
        wid = self._word_ids(flat)  # (n_tokens,) vocabulary word id, -1 when unknown
        uni_col = self.unigram_col[wid]
        uni_col[wid < 0] = -1
        pair = (doc[:-1] == doc[1:]) & (wid[:-1] >= 0) & (wid[1:] >= 0)  # consecutive known words, one review
        keys = wid[:-1][pair] * len(self.words) + wid[1:][pair]
        pos = np.minimum(np.searchsorted(self.bigram_keys, keys), max(len(self.bigram_keys) - 1, 0))
        found = self.bigram_keys[pos] == keys if len(self.bigram_keys) else np.zeros(len(keys), dtype=bool)
        rows = np.concatenate([doc[uni_col >= 0], doc[:-1][pair][found]])
        cols = np.concatenate([uni_col[uni_col >= 0], self.bigram_col[pos[found]]])
        x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(texts), len(self.terms)))  # counts
        x.sum_duplicates()
        x.data = (1.0 + np.log(x.data) if self.cfg.sublinear_tf else x.data) * self.idf[x.indices]
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())  # l2-normalised rows, as TfidfVectorizer
        return expit((x @ self.weights) / np.maximum(norms, 1e-12) + self.intercept)

    def _word_ids(self, tokens: pa.Array) -> np.ndarray:
        """Vocabulary word id of every token (-1 when unknown), hashing only the chunk's distinct tokens."""
        encoded = tokens.dictionary_encode()  # the chunk's own distinct tokens
        where = pc.fill_null(pc.index_in(self.words, value_set=encoded.dictionary), -1).to_numpy()  # (W,)
        local_to_word = np.full(len(encoded.dictionary), -1, dtype=np.int64)
        hit = np.flatnonzero(where >= 0)
        local_to_word[where[hit]] = hit
        return local_to_word[encoded.indices.to_numpy()]

    def explain(self, texts: list[str]) -> list[Explanation]:
        """Exact: the logit is intercept + sum over terms of coef x tf-idf / norm, so each term's share is
        known; a unigram's goes to its occurrences, a bigram's half to each of its two words. The shares are
        scaled from logits to P(positive) so that they add up to P(text) - P(empty review)."""
        vocab, base = self.vectorizer.vocabulary_, float(expit(self.intercept))
        out = []
        for text in texts:
            tokens = [(m.start(), m.end(), m.group().lower()) for m in SKLEARN_TOKEN.finditer(text)]
            hits: dict[int, list[tuple[int, ...]]] = {}  # column -> the token indices of each occurrence
            for i, (_, _, tok) in enumerate(tokens):
                hits.setdefault(vocab.get(tok, -1), []).append((i,))
                if i + 1 < len(tokens):
                    hits.setdefault(vocab.get(f"{tok} {tokens[i + 1][2]}", -1), []).append((i, i + 1))
            hits.pop(-1, None)
            cols = np.fromiter(hits, dtype=np.int64, count=len(hits))
            tf = np.array([len(hits[c]) for c in cols], dtype=np.float64)
            x = (1.0 + np.log(tf) if self.cfg.sublinear_tf else tf) * self.idf[cols]  # (terms,)
            z = self.weights[cols] * x / max(float(np.sqrt((x * x).sum())), 1e-12)  # each term's logit share
            weight = np.zeros(len(tokens))
            for c, share in zip(cols, z, strict=True):
                for occurrence in hits[c]:
                    weight[list(occurrence)] += share / len(hits[c]) / len(occurrence)
            p = float(expit(self.intercept + z.sum()))
            scale = (p - base) / z.sum() if abs(z.sum()) > 1e-12 else 0.0  # logit shares -> P shares
            spans = [(s, e, float(w * scale)) for (s, e, _), w in zip(tokens, weight, strict=True) if w]
            out.append(Explanation(spans, p, base, "exact (coefficient x tf-idf)"))
        return out

    def n_params(self) -> int:
        return int(self.coef.size + 1)

    @classmethod
    def fit(cls, train: pd.DataFrame, val: pd.DataFrame, preset: str = "quick", overrides: dict | None = None,
            progress=print) -> tuple[TfidfLR, list[dict], dict]:
        cfg = TfidfConfig(**{**asdict(PRESETS[preset]), **(overrides or {})})
        start = time.perf_counter()
        vec = _vectorizer(cfg)
        x_train = vec.fit_transform(train["text"])
        x_val = vec.transform(val["text"])
        progress(f"tfidf: {x_train.shape[1]:,} features from {len(train):,} reviews")
        best, history = None, []
        for i, c in enumerate(cfg.c_grid):
            lr = LogisticRegression(C=c, max_iter=1000, solver="liblinear").fit(x_train, train["y"])
            val_acc = float((lr.predict(x_val) == val["y"]).mean())
            train_acc = float((lr.predict(x_train) == train["y"]).mean())
            history.append({"epoch": i + 1, "train_acc": train_acc, "val_acc": val_acc, "C": c,
                            "seconds": time.perf_counter() - start})
            progress(f"tfidf: C={c} validation accuracy {val_acc:.4f}")
            if best is None or val_acc > best[0]:
                best = (val_acc, c, lr)
        _, c, lr = best
        model = cls(vec, lr.coef_.ravel().astype(np.float32), lr.intercept_[0], cfg)
        return model, history, {**asdict(cfg), "C": c}

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        write_manifest(directory, KIND, config=asdict(self.cfg), intercept=self.intercept)
        terms = sorted(self.vectorizer.vocabulary_, key=self.vectorizer.vocabulary_.get)
        (directory / "vocabulary.json").write_text(json.dumps(terms))
        np.save(directory / "idf.npy", self.vectorizer.idf_.astype(np.float32), allow_pickle=False)
        np.save(directory / "coef.npy", self.coef, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path) -> TfidfLR:
        directory = Path(directory)
        manifest = json.loads((directory / "model.json").read_text())
        cfg = TfidfConfig(**{**manifest["config"], "c_grid": tuple(manifest["config"]["c_grid"])})
        terms = json.loads((directory / "vocabulary.json").read_text())
        vec = _vectorizer(cfg, vocabulary={t: i for i, t in enumerate(terms)})
        vec.idf_ = np.load(directory / "idf.npy", allow_pickle=False)
        return cls(vec, np.load(directory / "coef.npy", allow_pickle=False), manifest["intercept"], cfg)

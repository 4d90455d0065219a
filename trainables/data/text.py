"""Hashed bag-of-n-grams text ids for an EmbeddingBag, from scikit-learn's `HashingVectorizer`.

A row's ids come in blocks, one per vectorizer of `vectorizers`: its distinct nonzero columns
plus 1, in ascending column order. The blocks are word unigrams, then word bigrams, then the
char_wb n-grams of each size in `char_ngrams` (n-grams of " word ", the spaces marking its
ends); the row is truncated to `max_tokens`, so char n-grams are cut first, then bigrams. Id 0
is padding; ids lie in [1, buckets) (the vectorizers have `buckets - 1` columns).

Words: the text is lower-cased and each run of characters other than Unicode letters, digits and
"_" becomes one space (`normalise`, in pyarrow, once), so "foo.bar()" is "foo", "bar" and "été"
is one word; both analyzers read those words, so the char n-grams are the words' own. Hashes are
scikit-learn's (MurmurHash3 with a fixed seed, modulo the column count): ids do not depend on the
process and are the same on every run and machine. A row's block is exactly the nonzero columns
of that vectorizer's `transform` of the row's `normalise`d text (the tests check it against
scikit-learn run on each text); to get there for a million rows in seconds rather than half a
minute, each chunk of rows hashes its distinct words and bigrams once, and a sparse product
with the rows' word (or bigram) incidence gathers their columns per row: a text's char_wb
n-grams are the union of its words', its unigrams and bigrams one feature each.

Distinct ids, not counts: a row's mean bag is the mean over its set of n-grams (a binary bag, as
scikit-learn's `binary=True`), not weighted by how often an n-gram repeats, and a frequent
n-gram (a common trigram, a repeated word) takes one of the `max_tokens` slots instead of
several, leaving them to n-grams that tell rows apart. The blocks are not merged: a word of
exactly n characters hashes like its char n-gram ("fix" and the "fix" of " fix "), so its id can
appear twice in a row; scikit-learn's hash has no seed to keep the kinds apart (the hand-written
hashes this replaced salted each kind).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

if TYPE_CHECKING:  # scikit-learn is imported when texts are encoded, not by every trial worker
    from sklearn.feature_extraction.text import HashingVectorizer

CHUNK_ROWS = 1 << 16  # rows encoded at once: each chunk hashes its distinct words and bigrams
CHUNK_BYTES = 1 << 24  # and at most about this many bytes of text: bounded temporaries
NOT_WORD = r"[^\p{L}\p{N}_]+"  # RE2: a run of characters that are not letters, digits or "_"

TextInput = pa.Array | pa.ChunkedArray | pd.Series | Sequence[str | None]


def encode_texts(
    texts: TextInput, buckets: int, max_tokens: int, char_ngrams: Sequence[int] = (3,)
) -> np.ndarray:
    """(n, L) int64 ids in [1, buckets), 0 = padding, L = min(max_tokens, longest row, ≥ 1).

    A null or word-free text is a row of padding. See the module docstring for the ids' order.
    """
    arr = normalise(texts)
    blocks = vectorizers(buckets, char_ngrams)
    out = np.zeros((len(arr), max_tokens), dtype=np.int64)  # (n, max_tokens)
    used = 1
    cuts = _chunks(arr)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        filled = _encode_chunk(arr.slice(lo, hi - lo), blocks, out[lo:hi])
        used = max(used, min(int(filled.max(initial=0)), max_tokens))
    return np.ascontiguousarray(out[:, :used]) if used < max_tokens else out


def vectorizers(buckets: int, char_ngrams: Sequence[int] = (3,)) -> list[HashingVectorizer]:
    """One HashingVectorizer per block of a row's ids, in order: word unigrams, word bigrams,
    char_wb n-grams of each size. They read `normalise`d texts (lower-cased, words separated by
    single spaces), keep single-letter words, and count (no alternating sign, no norm)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {
        "n_features": buckets - 1,  # column j is id j + 1; id 0 stays padding
        "alternate_sign": False,
        "norm": None,
        "lowercase": False,  # `normalise` lower-cased the texts once, in pyarrow
        "dtype": np.float32,  # only the columns are read; the counts are never used
    }
    words = {"analyzer": "word", "token_pattern": r"\S+"}  # \S+: "a" is a word too
    return [
        HashingVectorizer(ngram_range=(1, 1), **words, **common),
        HashingVectorizer(ngram_range=(2, 2), **words, **common),
        *(HashingVectorizer(analyzer="char_wb", ngram_range=(n, n), **common) for n in char_ngrams),
    ]


def normalise(texts: TextInput) -> pa.Array:
    """The texts as the vectorizers read them: one large_string array, nulls as "", lower-cased,
    each run of characters other than letters, digits and "_" replaced by one space."""
    arr = pc.fill_null(_as_large_string(texts), "")
    return pc.replace_substring_regex(pc.utf8_lower(arr), pattern=NOT_WORD, replacement=" ")


def _encode_chunk(arr: pa.Array, blocks: list[HashingVectorizer], out: np.ndarray) -> np.ndarray:
    """Write the ids of m `normalise`d texts into `out` (m, max_tokens); (m,) each row's id count
    before truncation. Each distinct word and bigram of the chunk is hashed once; a sparse
    product with the (rows × words) or (rows × bigrams) incidence gathers them per row."""
    m = len(arr)
    word, row, vocab = _words(arr)
    pair, pair_row, pairs = _bigrams(word, row, vocab)
    has_word = _incidence(row, word, (m, len(vocab)))  # (m, V)
    has_pair = _incidence(pair_row, pair, (m, len(pairs)))  # (m, P)
    words, bigrams = vocab.to_pylist(), pairs.to_pylist()
    unigram, bigram, *chars = blocks
    filled = np.zeros(m, dtype=np.int64)
    _append(out, filled, has_word @ _hashed(unigram, words))  # (m, buckets - 1)
    _append(out, filled, has_pair @ _hashed(bigram, bigrams))
    for vectorizer in chars:
        _append(out, filled, has_word @ _hashed(vectorizer, words))
    return filled


def _append(out: np.ndarray, filled: np.ndarray, block: sparse.csr_matrix) -> None:
    """Write a block's ids (its CSR columns + 1, ascending, row by row) after the `filled` ids of
    each row of `out` (m, L), where they fit; `filled` grows by each row's column count."""
    block.sort_indices()  # a sparse product's columns come in the order its terms were met
    indptr = block.indptr.astype(np.int64)
    count = np.diff(indptr)  # (m,) distinct columns per row
    rows = np.repeat(np.arange(count.shape[0]), count)  # (nnz,)
    pos = filled[rows] + np.arange(rows.shape[0]) - indptr[:-1][rows]  # (nnz,) slot in its row
    fit = pos < out.shape[1]
    out[rows[fit], pos[fit]] = block.indices[fit].astype(np.int64) + 1
    filled += count


def _words(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The words of `normalise`d texts: (T,) each one's index into the distinct words, (T,) its
    row (non-decreasing), and the distinct words."""
    split = pc.split_pattern(arr, " ")
    flat = pc.list_flatten(split)
    keep = pc.greater(pc.binary_length(flat), 0)  # "" from a leading or trailing space
    row = pc.list_parent_indices(split).filter(keep).to_numpy().astype(np.int64)
    encoded = pc.dictionary_encode(flat.filter(keep))
    return encoded.indices.to_numpy().astype(np.int64), row, encoded.dictionary


def _bigrams(
    word: np.ndarray, row: np.ndarray, vocab: pa.Array
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Neighbouring words of a row: (P,) each pair's index into the distinct pairs, (P,) its row,
    and the distinct pairs as texts "first second"."""
    same = row[1:] == row[:-1]
    code = pa.array(word[:-1][same] * len(vocab) + word[1:][same])  # (P,) int64, one per pair
    encoded = pc.dictionary_encode(code)
    distinct = encoded.dictionary.to_numpy()
    first, second = vocab.take(distinct // len(vocab)), vocab.take(distinct % len(vocab))
    pairs = pc.binary_join_element_wise(first, second, pa.scalar(" ", pa.large_string()))
    return encoded.indices.to_numpy().astype(np.int64), row[1:][same], pairs


def _hashed(vectorizer: HashingVectorizer, units: list[str]) -> sparse.csr_matrix:
    """(U, buckets - 1): the vectorizer's counts of each distinct word or bigram. A word block's
    unit is already the one feature its analyzer makes of it (the word, or "first second"), so
    it goes straight to a FeatureHasher of the vectorizer's settings, the hasher the vectorizer
    hands its features to (5× faster on a million bigrams than analysing each one again)."""
    from sklearn.feature_extraction import FeatureHasher

    if not units:  # scikit-learn refuses an empty input
        return sparse.csr_matrix((0, vectorizer.n_features), dtype=vectorizer.dtype)
    if vectorizer.analyzer != "word":
        return vectorizer.transform(units)
    hasher = FeatureHasher(
        n_features=vectorizer.n_features,
        input_type="string",
        dtype=vectorizer.dtype,
        alternate_sign=vectorizer.alternate_sign,
    )
    return hasher.transform([u] for u in units)


def _chunks(arr: pa.Array) -> np.ndarray:
    """Row boundaries [0, ..., n]: at most CHUNK_ROWS rows and about CHUNK_BYTES bytes each."""
    n = len(arr)
    ends = np.cumsum(pc.binary_length(arr).to_numpy(zero_copy_only=False))  # (n,) bytes so far
    by_bytes = np.searchsorted(ends, np.arange(CHUNK_BYTES, ends[-1] if n else 0, CHUNK_BYTES))
    return np.unique(np.concatenate([np.arange(0, n, CHUNK_ROWS), by_bytes, [n]])).astype(np.int64)


def _incidence(row: np.ndarray, unit: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    """(rows, units) CSR with a 1 for each occurrence of unit u in row r; `row` non-decreasing."""
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=shape[0]), out=indptr[1:])
    return sparse.csr_matrix((np.ones(unit.shape[0], np.float32), unit, indptr), shape=shape)


def _as_large_string(texts: TextInput) -> pa.Array:
    """One large_string array (64-bit offsets: more than 2 GiB of text is fine)."""
    if isinstance(texts, pd.Series):
        texts = texts.astype("str").array
    if not isinstance(texts, pa.Array | pa.ChunkedArray):
        texts = pa.array(
            texts if hasattr(texts, "__arrow_array__") else list(texts), pa.large_string()
        )
    texts = texts.cast(pa.large_string())
    return texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts

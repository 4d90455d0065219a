"""Hashed bag-of-n-grams text ids for an EmbeddingBag: word unigrams, word bigrams, char n-grams.

Text is lower-cased (Unicode) and split into maximal runs of word characters: ASCII letters, digits,
"_" and any non-ASCII character (so "été" is one word; "foo.bar()" is "foo", "bar"). Each token is
hashed (a polynomial hash of its UTF-8 bytes mod 2^64, then splitmix64) to an id in [1, buckets);
id 0 is padding. A row holds its unigrams, then its bigrams, then the character n-grams of its
words ("<word>" with boundary marks, over UTF-8 bytes), truncated to `max_tokens`.
Everything is vectorised over pyarrow/numpy buffers, in chunks of rows to bound memory; hashes
do not depend on the process (no Python `hash`), so ids are stable across runs and machines.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 16384  # rows encoded at once: small temporaries are faster (fewer page faults)
CHUNK_BYTES = 1 << 22  # and at most about this many bytes of text, whatever the row lengths
_BASE = 0x100000001B3  # polynomial base (odd, hence invertible mod 2^64)
_BASE_INV = pow(_BASE, -1, 1 << 64)
_SALT = {"word": 0x9E3779B97F4A7C15, "bigram": 0xC2B2AE3D27D4EB4F, "char": 0x165667B19E3779F9}
_LENGTH_MULT = 0xD6E8FEB86659FD93  # mixes a segment's length into its hash
_MARK_OPEN, _MARK_CLOSE = ord("<"), ord(">")


def _word_bytes() -> np.ndarray:
    """(256,) bool: ASCII letters, digits, "_" and every byte of a non-ASCII UTF-8 character."""
    table = np.zeros(256, dtype=bool)
    for lo, hi in (("a", "z"), ("A", "Z"), ("0", "9"), ("_", "_")):
        table[ord(lo) : ord(hi) + 1] = True
    table[0x80:] = True
    return table


_WORD_BYTE = _word_bytes()

TextInput = pa.Array | pa.ChunkedArray | pd.Series | Sequence[str | None]


def encode_texts(
    texts: TextInput, buckets: int, max_tokens: int, char_ngrams: Sequence[int] = (3,)
) -> np.ndarray:
    """(n, L) int64 ids in [1, buckets), 0 = padding, L = min(max_tokens, longest row, ≥ 1).

    A null or token-free text is a row of padding.
    """
    arr = _as_large_string(texts)
    out = np.zeros((len(arr), max_tokens), dtype=np.int64)  # (n, max_tokens)
    used = 1
    cuts = _chunks(arr)
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        chunk = out[lo:hi]
        _encode_chunk(
            arr.slice(lo, hi - lo), chunk.reshape(-1), buckets, max_tokens, tuple(char_ngrams)
        )
        used = max(used, int((chunk != 0).sum(axis=1).max()))
    return np.ascontiguousarray(out[:, :used]) if used < max_tokens else out


def _chunks(arr: pa.Array) -> np.ndarray:
    """Row boundaries [0, ..., n]: at most CHUNK_ROWS rows and about CHUNK_BYTES bytes each."""
    _, starts, ends = _buffers(arr)
    n = len(arr)
    by_bytes = np.searchsorted(starts, np.arange(CHUNK_BYTES, ends[-1] if n else 0, CHUNK_BYTES))
    return np.unique(np.concatenate([np.arange(0, n, CHUNK_ROWS), by_bytes, [n]])).astype(np.int64)


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


def _encode_chunk(
    arr: pa.Array, out: np.ndarray, buckets: int, length: int, ngrams: tuple[int, ...]
) -> None:
    """Write the ids of a chunk of m texts into `out`, its zeroed (m·length,) row-major block."""
    m = len(arr)
    data, row_start, _ = _buffers(pc.utf8_lower(pc.fill_null(arr, "")))
    starts, ends = _tokens(data, row_start)
    if starts.shape[0] == 0:
        return
    rows = np.searchsorted(row_start, starts, side="right") - 1  # (T,) row of each word
    word, vocab = _vocabulary(data, starts, ends)  # (T,) index into the chunk's distinct words
    vocab_data, vocab_start, vocab_end = _buffers(vocab)
    word_hash = _hash_segments(vocab_data, vocab_start, vocab_end)[word]  # (T,)

    count = np.bincount(rows, minlength=m)  # (m,) words per row
    first = np.cumsum(count) - count
    rank = np.arange(rows.shape[0]) - first[rows]  # (T,) word position within its row
    _put(out, length, rows, rank, word_hash, "word", buckets)

    same = rows[1:] == rows[:-1]
    pair = np.uint64(_BASE) * word_hash[:-1][same] + word_hash[1:][same]
    pair_rows = rows[1:][same]
    _put(out, length, pair_rows, count[pair_rows] + rank[1:][same] - 1, pair, "bigram", buckets)

    if ngrams:
        gram_hash, gram_first, gram_count = _char_grams(vocab_data, vocab_start, vocab_end, ngrams)
        per_word = gram_count[word]  # (T,)
        before = np.cumsum(per_word) - per_word  # grams of earlier words in the chunk
        start = 2 * count[rows] - 1 + before - before[first[rows]]  # (T,) first free position
        live = (start < length) & (per_word > 0)
        w, r, s, k = word[live], rows[live], start[live], per_word[live]
        occ = np.repeat(np.arange(w.shape[0]), k)
        offset = np.arange(occ.shape[0]) - np.repeat(np.cumsum(k) - k, k)
        pos = s[occ] + offset
        fit = pos < length
        occ, offset, pos = occ[fit], offset[fit], pos[fit]
        _put(out, length, r[occ], pos, gram_hash[gram_first[w][occ] + offset], "char", buckets)


def _tokens(data: np.ndarray, row_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) byte offsets of maximal runs of word bytes that do not cross a row start."""
    word = _WORD_BYTE[data]  # (B,)
    row_edge = np.zeros(data.shape[0] + 1, dtype=bool)
    row_edge[row_start] = True
    before = np.concatenate([[False], word[:-1]])
    after = np.concatenate([word[1:], [False]])
    starts = np.flatnonzero(word & (~before | row_edge[:-1]))
    ends = np.flatnonzero(word & (~after | row_edge[1:])) + 1
    return starts, ends


def _vocabulary(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray
) -> tuple[np.ndarray, pa.Array]:
    """(T,) index of each token among the distinct tokens, and those distinct tokens."""
    size = ends - starts
    offsets = np.zeros(size.shape[0] + 1, dtype=np.int64)
    np.cumsum(size, out=offsets[1:])
    packed = data[np.repeat(starts - offsets[:-1], size) + np.arange(offsets[-1])]
    tokens = pa.LargeStringArray.from_buffers(
        size.shape[0], pa.py_buffer(offsets), pa.py_buffer(packed)
    )
    encoded = pc.dictionary_encode(tokens)
    return encoded.indices.to_numpy().astype(np.int64), encoded.dictionary


def _put(
    out: np.ndarray,
    length: int,
    rows: np.ndarray,
    pos: np.ndarray,
    h: np.ndarray,
    kind: str,
    buckets: int,
) -> None:
    """Write the ids of hashes `h` at (rows, pos) of the flat (m·length,) output where pos < length."""
    fit = pos < length
    out[rows[fit] * length + pos[fit]] = _ids(h[fit], kind, buckets)


def _buffers(strings: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bytes, starts, ends) of a large_string array's UTF-8 data, offsets relative to bytes[0]."""
    _, offsets_buf, data_buf = strings.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[
        strings.offset : strings.offset + len(strings) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    data = data[offsets[0] : offsets[-1]]
    offsets = offsets - offsets[0]
    return data, offsets[:-1], offsets[1:]


_POWER_CACHE: dict[int, np.ndarray] = {}


def _powers(base: int, n: int) -> np.ndarray:
    """(n,) base^i mod 2^64, i = 0..n−1; built by doubling and memoised (they never change)."""
    p = _POWER_CACHE.get(base, np.ones(1, dtype=np.uint64))
    while p.shape[0] < n:
        p = np.concatenate([p, p * np.uint64(pow(base, p.shape[0], 1 << 64))])
    _POWER_CACHE[base] = p
    return p[:n]


def _hash_segments(data: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(S,) uint64 h = mix(len·c ⊕ Σ_j (b_j + 1)·B^(j−start)) over each byte segment [start, end)."""
    n = data.shape[0] + 1
    prefix = np.zeros(n, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * _powers(_BASE, n)[:-1], out=prefix[1:])
    h = (prefix[ends] - prefix[starts]) * _powers(_BASE_INV, n)[starts]
    return _mix(h ^ ((ends - starts).astype(np.uint64) * np.uint64(_LENGTH_MULT)))


def _char_grams(
    data: np.ndarray, starts: np.ndarray, ends: np.ndarray, ngrams: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Byte n-grams of each "<word>": (hashes, first index per word, count per word)."""
    size = ends - starts  # (U,)
    u = size.shape[0]
    new_start = np.cumsum(size + 2) - (size + 2)  # "<word>" laid out one after another
    marked = np.empty(int((size + 2).sum()), dtype=np.uint8)
    k = np.arange(int(size.sum())) - np.repeat(np.cumsum(size) - size, size)  # byte offset in word
    marked[np.repeat(new_start + 1, size) + k] = data[np.repeat(starts, size) + k]
    marked[new_start] = _MARK_OPEN
    marked[new_start + size + 1] = _MARK_CLOSE
    counts = [np.maximum(size + 2 - n + 1, 0) for n in ngrams]  # grams per word for each n
    total = np.sum(counts, axis=0)
    first = np.cumsum(total) - total
    gram_start = np.empty(int(total.sum()), dtype=np.int64)
    gram_len = np.empty_like(gram_start)
    done = np.zeros(u, dtype=np.int64)
    for n, c in zip(ngrams, counts, strict=True):
        owner = np.repeat(np.arange(u), c)  # word of each n-gram
        k = np.arange(owner.shape[0]) - np.repeat(np.cumsum(c) - c, c)  # its offset in the word
        at = first[owner] + done[owner] + k
        gram_start[at], gram_len[at] = new_start[owner] + k, n
        done += c
    return _hash_segments(marked, gram_start, gram_start + gram_len), first, total


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over every output bit."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _ids(h: np.ndarray, kind: str, buckets: int) -> np.ndarray:
    """Ids in [1, buckets) from uint64 hashes, salted per token kind."""
    return (_mix(h ^ np.uint64(_SALT[kind])) % np.uint64(buckets - 1)).astype(np.int64) + 1

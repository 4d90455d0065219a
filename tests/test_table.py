"""Table loading, text ids, presets: checked against pandas, scipy and hand calculations."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import percentileofscore

import trainables.data.text as text_module
from trainables.data.presets import NOVA_PATH, PRESETS, build_dataset, describe_presets
from trainables.data.table import TableSpec, load_table, stratified_split
from trainables.data.text import encode_texts
from trainables.errors import UserInputError

LABELS = ["bug", "doc", "style"]
OWNERSHIP = {
    "share": {"signal": "aco", "granularity": "package", "norm": "none"},
    "reviews": {"signal": "rso", "granularity": "package", "norm": "log_max"},
    "commits": {"signal": "rso", "granularity": "repository", "norm": "rank"},
}


def _frame(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.normal(3.0, 2.0, n),
            "b": rng.integers(0, 1000, n).astype(float),
            "const": np.full(n, 7.0),
            "share": rng.random(n),
            "reviews": rng.poisson(20, n).astype(float),
            "commits": rng.integers(0, 10, n).astype(float),
            "msg": [f"Fix the {['bug', 'doc', 'typo'][i % 3]} now" for i in range(n)],
            "label": [LABELS[i % 3] for i in range(n)],
        }
    )
    frame.loc[[1, 5], "a"] = np.nan
    frame.loc[2, "b"] = np.inf
    frame.loc[[3, 4], "share"] = np.nan
    frame.loc[6, "msg"] = None
    return frame


def _write(frame: pd.DataFrame, tmp_path: Path, name: str = "t.csv") -> str:
    path = tmp_path / name
    if name.endswith((".parquet", ".pq")):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return str(path)


def _spec(path: str, **kw) -> TableSpec:
    base = dict(
        path=path, label="label", text="msg", features=("a", "b", "const"), ownership=OWNERSHIP
    )
    return TableSpec(**{**base, **kw})


def _rows(data) -> dict[str, np.ndarray]:
    return data.meta["rows"]


def _gather(data, attr: str) -> np.ndarray:
    """An attribute of all three splits put back in file row order."""
    rows = _rows(data)
    parts = [getattr(getattr(data, s), attr).numpy() for s in ("train", "val", "test")]
    out = np.empty((sum(len(r) for r in rows.values()), *parts[0].shape[1:]), dtype=parts[0].dtype)
    for part, s in zip(parts, ("train", "val", "test"), strict=True):
        out[rows[s]] = part
    return out


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    frame = _frame()
    path = _write(frame, tmp_path_factory.mktemp("t"))
    return frame, load_table(_spec(path))


def test_features_are_standardised_like_pandas_on_the_training_rows(loaded):
    frame, data = loaded
    train = _rows(data)["train"]
    assert data.meta["features"] == ["a", "b"]
    assert data.meta["dropped_features"] == ["const"]
    x = _gather(data, "x")
    for j, name in enumerate(["a", "b"]):
        col = frame[name].replace([np.inf, -np.inf], np.nan)
        ref = (col - col.iloc[train].mean()) / col.iloc[train].std(ddof=0)
        np.testing.assert_allclose(x[:, j], ref.fillna(0.0).to_numpy(), rtol=1e-5, atol=1e-6)
    assert x[1, 0] == 0.0 and x[2, 1] == 0.0  # NaN and inf become the training mean
    assert x.dtype == np.float32


def test_log_features_use_signed_log1p(tmp_path):
    frame = _frame()
    frame.loc[0, "a"] = -5.0
    data = load_table(_spec(_write(frame, tmp_path), log_features=("a",)))
    train = _rows(data)["train"]
    logged = np.sign(frame["a"]) * np.log1p(frame["a"].abs())
    ref = (logged - logged.iloc[train].mean()) / logged.iloc[train].std(ddof=0)
    np.testing.assert_allclose(_gather(data, "x")[:, 0], ref.fillna(0.0), rtol=1e-5, atol=1e-6)


def test_ownership_norms_match_hand_computation(loaded):
    frame, data = loaded
    train = _rows(data)["train"]
    aco, rso = _gather(data, "aco"), _gather(data, "rso")
    np.testing.assert_allclose(aco[:, 2], frame["share"], rtol=1e-6)  # none: as is, NaN kept
    assert np.isnan(aco[[3, 4]]).all()
    top = frame["reviews"].iloc[train].max()
    np.testing.assert_allclose(
        rso[:, 2], np.minimum(np.log1p(frame["reviews"]) / np.log1p(top), 1), rtol=1e-6
    )
    ref = frame["commits"].iloc[train].to_numpy()
    rank = [percentileofscore(ref, v, kind="mean") / 100 for v in frame["commits"]]
    np.testing.assert_allclose(rso[:, 0], rank, rtol=1e-6)


def test_unmapped_granularities_copy_the_nearest_mapped_one(loaded):
    _, data = loaded
    aco, rso = _gather(data, "aco"), _gather(data, "rso")
    np.testing.assert_array_equal(aco[:, 0], aco[:, 2])  # only package mapped: copied everywhere
    np.testing.assert_array_equal(aco[:, 1], aco[:, 2])
    np.testing.assert_array_equal(rso[:, 1], rso[:, 2])  # tie between repository and package: finer
    assert not np.allclose(rso[:, 0], rso[:, 2])
    assert data.meta["ownership_source"]["rso"] == {
        "repository": "commits",
        "subsystem": "reviews",
        "package": "reviews",
    }


def test_a_signal_without_columns_is_all_missing(tmp_path):
    own = {"share": {"signal": "aco", "granularity": "subsystem"}}
    data = load_table(_spec(_write(_frame(), tmp_path), ownership=own))
    assert torch.isnan(data.train.rso).all()
    assert not torch.isnan(data.train.aco[:, 0]).all()


def test_split_is_stratified_disjoint_and_seeded(loaded, tmp_path):
    frame, data = loaded
    rows = _rows(data)
    everything = np.concatenate(list(rows.values()))
    assert np.array_equal(np.sort(everything), np.arange(len(frame)))
    for s, frac in (("val", 0.15), ("test", 0.15)):
        counts = frame["label"].iloc[rows[s]].value_counts()
        assert all(counts[c] == round(40 * frac) for c in LABELS)
    y = _gather(data, "y")
    np.testing.assert_array_equal(y, frame["label"].map({c: i for i, c in enumerate(LABELS)}))
    again = load_table(_spec(_write(frame, tmp_path)))
    assert all(np.array_equal(again.meta["rows"][s], rows[s]) for s in rows)
    other = load_table(_spec(_write(frame, tmp_path), seed=1))
    assert not np.array_equal(other.meta["rows"]["val"], rows["val"])


def test_stratified_split_keeps_a_row_per_split_for_tiny_classes():
    y = np.array([0, 0, 0] + [1] * 50)
    train, val, test = stratified_split(y, 0.1, 0.1, seed=0)
    for part in (train, val, test):
        assert (y[part] == 0).sum() >= 1
    assert (y[val] == 1).sum() == 5 and (y[test] == 1).sum() == 5


def test_label_mapping_is_sorted_and_numeric_labels_sort_as_numbers(tmp_path, loaded):
    _, data = loaded
    assert data.classes == ("bug", "doc", "style")
    assert data.meta["label_map"] == {"bug": 0, "doc": 1, "style": 2}
    frame = _frame()
    frame["label"] = [[2, 10, 1][i % 3] for i in range(len(frame))]
    numeric = load_table(_spec(_write(frame, tmp_path)))
    assert numeric.classes == ("1", "2", "10")


def test_text_ids_are_padded_bounded_and_shared_between_rows(loaded):
    frame, data = loaded
    tokens = _gather(data, "tokens")
    assert data.vocab_size == TableSpec("x", "y").text_buckets
    assert tokens.dtype == np.int64 and tokens.shape[1] <= 64
    assert (tokens >= 0).all() and (tokens < data.vocab_size).all()
    assert (tokens[6] == 0).all()  # missing text: all padding
    # "Fix the bug now": 4 words, 3 bigrams, 3-grams of " fix " " the " " bug " " now ": 3 each
    assert (tokens[0] > 0).sum() == 19
    np.testing.assert_array_equal(tokens[0], tokens[3])  # same text, same ids
    fix_the_now = set(encode_texts(["fix the now"], data.vocab_size, 64, ())[0, :3])
    assert fix_the_now <= set(tokens[0, :4]) and fix_the_now <= set(tokens[1, :4])
    assert set(tokens[0, :4]) != set(tokens[1, :4])  # "bug" vs "doc"


def test_encode_texts_by_hand():
    ids = encode_texts(["ab cd", "AB", "", None, "ab!!cd"], buckets=1000, max_tokens=10)
    assert ids.shape == (5, 7)  # longest row: 2 words + 1 bigram + 2·2 char 3-grams
    assert (ids[0] > 0).sum() == 7 and (ids[1] > 0).sum() == 3  # "ab" + " ab", "ab "
    assert set(ids[1]) - {0} < set(ids[0])  # lower-cased
    np.testing.assert_array_equal(ids[4], ids[0])  # punctuation separates words
    assert (ids[2:4] == 0).all()
    words_only = encode_texts(["ab cd ef"], buckets=1000, max_tokens=10, char_ngrams=())
    assert (words_only > 0).sum() == 5


def _reference(
    texts: list[str | None], buckets: int, char_ngrams: tuple[int, ...]
) -> list[list[int]]:
    """Each row's ids from scikit-learn alone: per block (word unigrams, word bigrams, char_wb
    n-grams of each size) the nonzero columns of HashingVectorizer.transform plus 1, with the
    words of Python's Unicode regex, not the encoder's pyarrow normalisation."""
    from sklearn.feature_extraction.text import HashingVectorizer

    common = {
        "n_features": buckets - 1,
        "alternate_sign": False,
        "norm": None,
        "preprocessor": lambda t: re.sub(r"\W+", " ", t.lower()),
    }
    blocks = [
        HashingVectorizer(ngram_range=(1, 1), token_pattern=r"\w+", **common),
        HashingVectorizer(ngram_range=(2, 2), token_pattern=r"\w+", **common),
        *(HashingVectorizer(analyzer="char_wb", ngram_range=(n, n), **common) for n in char_ngrams),
    ]
    docs = [t or "" for t in texts]
    columns = [v.transform(docs) for v in blocks]
    return [sum((sorted(m[i].indices + 1) for m in columns), []) for i in range(len(docs))]


TEXTS = [
    "Fix the bug now",
    "foo.bar() is None; foo_bar(x=1) — “quoted” text, it’s here",
    "Été naïve CAFÉ ÉTÉ été",  # upper and lower case are one word
    "中文 字 ١٢٣ Ελληνικά ਪੰਜਾਬੀ",
    "the the the cat the",  # repeats: distinct ids
    "a b",  # single letters are words
    "!!! ...",
    "",
    None,
]


@pytest.mark.parametrize("char_ngrams", [(3,), (2, 4), ()])
def test_text_ids_are_hashing_vectorizer_columns(char_ngrams):
    ids = encode_texts(TEXTS, 1 << 12, 256, char_ngrams)
    want = _reference(TEXTS, 1 << 12, char_ngrams)
    assert ids.shape == (len(TEXTS), max(len(w) for w in want))
    assert [row[row > 0].tolist() for row in ids] == want
    assert (ids[-3:] == 0).all()  # no word, null, empty: padding


def test_text_ids_are_cut_chars_first_then_bigrams():
    text = " ".join(f"w{i}" for i in range(40))  # 40 unigrams, 39 bigrams, then char 3-grams
    whole = encode_texts([text], 1 << 17, 1000)[0]
    assert whole.tolist() == _reference([text], 1 << 17, (3,))[0]
    words = encode_texts([text], 1 << 17, 1000, ())[0]
    assert words.shape == (79,) and (np.diff(words[:40]) > 0).all()  # a block in column order
    cut = encode_texts([text], 1 << 17, 50)
    assert cut.shape == (1, 50)
    np.testing.assert_array_equal(cut[0], words[:50])  # all 40 unigrams, the first 10 bigrams


def test_text_ids_do_not_depend_on_chunking(monkeypatch):
    texts = [f"comment {i} about file_{i % 7}.py" if i % 5 else None for i in range(300)]
    whole = encode_texts(texts, 4096, 32)
    monkeypatch.setattr(text_module, "CHUNK_ROWS", 7)
    monkeypatch.setattr(text_module, "CHUNK_BYTES", 64)
    np.testing.assert_array_equal(encode_texts(texts, 4096, 32), whole)
    assert encode_texts([], 4096, 32).shape == (0, 1)


def test_text_ids_are_stable_across_runs():
    """scikit-learn's MurmurHash3 has a fixed seed: the ids are the same in every process, on
    every machine; a change here silently re-maps every trained embedding."""
    ids = encode_texts(["hello world"], 1 << 17, 4).tolist()
    assert ids == [[3214, 116026, 48729, 3516]]  # "hello", "world", "hello world", a 3-gram


def test_parquet_and_tsv_load_like_csv(tmp_path, loaded):
    frame, data = loaded
    for name in ("t.parquet", "t.tsv"):
        other = load_table(_spec(_write(frame, tmp_path, name)))
        for s in ("train", "val", "test"):
            a, b = getattr(data, s), getattr(other, s)
            assert (
                torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.tokens, b.tokens)
            )


def test_auto_features_skip_label_text_and_ownership(tmp_path):
    data = load_table(_spec(_write(_frame(), tmp_path), features="auto"))
    assert data.meta["features"] == ["a", "b"]


def test_no_text_column_means_no_tokens(tmp_path):
    data = load_table(_spec(_write(_frame(), tmp_path), text=None))
    assert data.train.tokens is None and data.vocab_size == 0


# ---- errors: one clear line naming the file, column or value -------------------------------


def _raises(match: str, spec: TableSpec) -> None:
    with pytest.raises(UserInputError, match=match) as info:
        load_table(spec)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    _raises("not found: .*nope.csv", _spec(str(tmp_path / "nope.csv")))


def test_unsupported_extension(tmp_path):
    path = tmp_path / "t.xlsx"
    path.write_text("a")
    _raises("t.xlsx: unsupported file type", _spec(str(path)))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(
        "a,b,const,share,reviews,commits,msg,label\n1,2,3,0.1,1,1,caf\xe9,bug\n".encode("latin-1")
    )
    _raises("latin.csv: column 'msg' is not valid UTF-8", _spec(str(path)))
    path.write_bytes(
        "a,b,const,share,reviews,commits,msg,label\n1,2,3,0.1,1,1,ok,caf\xe9\n".encode("latin-1")
    )
    _raises("latin.csv: column 'label' is not valid UTF-8", _spec(str(path)))
    path.write_bytes("caf\xe9,label\n1,x\n".encode("latin-1"))
    _raises("latin.csv: not valid UTF-8", _spec(str(path)))


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"label": "lable"}, "no label column 'lable' \\(did you mean: label\\?\\)"),
        ({"text": "mesg"}, "no text column 'mesg' \\(did you mean: msg\\?\\)"),
        ({"features": ("a", "bb")}, "no feature column 'bb'"),
        (
            {"ownership": {"sharee": {"signal": "aco", "granularity": "package"}}},
            "no ownership column 'sharee' \\(did you mean: share\\?\\)",
        ),
        (
            {"ownership": {"share": {"signal": "acoo", "granularity": "package"}}},
            "ownership.share.signal.*'acoo'",
        ),
        (
            {"ownership": {"share": {"signal": "aco", "granularity": "pkg"}}},
            "ownership.share.granularity",
        ),
        (
            {"ownership": {"share": {"signal": "aco", "granularity": "package", "norm": "log"}}},
            "ownership.share.norm.*log_max",
        ),
        (
            {"ownership": {"share": {"signal": "aco", "granularity": "package", "nrm": "x"}}},
            "unknown key 'nrm'",
        ),
        (
            {
                "ownership": {
                    "share": {"signal": "aco", "granularity": "package"},
                    "reviews": {"signal": "aco", "granularity": "package"},
                }
            },
            "both map to aco/package",
        ),
        (
            {"ownership": {"reviews": {"signal": "rso", "granularity": "package", "norm": "none"}}},
            "'reviews' has value .* outside \\[0, 1\\]",
        ),
        ({"features": ("a", "msg")}, "column 'msg' must be numeric"),
        ({"features": ("a", "label")}, "label column 'label' cannot also be a feature"),
        ({"log_features": ("share",)}, "log feature 'share' is not a feature"),
        ({"val_frac": 0.0}, "val_frac must be in"),
        ({"val_frac": 0.6, "test_frac": 0.5}, "val_frac \\+ test_frac must be < 1"),
    ],
)
def test_bad_specs_name_the_culprit(tmp_path, kw, match):
    _raises(match, _spec(_write(_frame(), tmp_path), **kw))


def test_negative_counts_with_log_max(tmp_path):
    frame = _frame()
    frame.loc[0, "reviews"] = -1
    _raises("'reviews' has negative values", _spec(_write(frame, tmp_path)))


@pytest.mark.parametrize("empty", [None, "", "  "])
def test_missing_labels(tmp_path, empty):
    frame = _frame()
    frame["label"] = frame["label"].astype(object)
    frame.loc[[4, 9], "label"] = empty
    _raises(
        "label column 'label' has 2 empty/NaN values \\(first rows \\[4, 9\\]\\)",
        _spec(_write(frame, tmp_path)),
    )


def test_single_class(tmp_path):
    frame = _frame()
    frame["label"] = "bug"
    _raises("label column 'label' has a single class", _spec(_write(frame, tmp_path)))


def test_class_too_small(tmp_path):
    frame = _frame()
    frame.loc[:, "label"] = "bug"
    frame.loc[[0, 1], "label"] = "rare"
    _raises("classes \\{'rare': 2\\} have fewer than 3 rows", _spec(_write(frame, tmp_path)))


def test_header_only_and_empty_files(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("a,b,const,share,reviews,commits,msg,label\n")
    _raises("h.csv: the table has no data rows", _spec(str(path)))
    path.write_text("")
    _raises("h.csv: the file is empty", _spec(str(path)))


def test_duplicated_column_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,a,label\n1,2,x\n")
    _raises("d.csv: duplicated column names \\['a'\\]", _spec(str(path)))


# ---- presets ---------------------------------------------------------------------------------


def test_presets_build_and_check_options():
    data = build_dataset(
        "synthetic", {"data.n_train": 300, "n_val": 100, "n_test": 100, "mixture": [0.5, 0.3, 0.2]}
    )
    assert len(data.train) == 300 and data.meta["spec"]["mixture"] == (0.5, 0.3, 0.2)
    assert data.meta["preset"] == "synthetic"
    small = {"n_train": 300, "n_val": 100, "n_test": 100}
    flat, base = build_dataset("synthetic-flat", small), build_dataset("synthetic", small)
    assert flat.meta["spec"]["noise_decay"] == 0.0
    assert torch.equal(flat.train.x, base.train.x) and torch.equal(flat.val.y, base.val.y)
    with pytest.raises(
        UserInputError, match="unknown preset 'synthetc' \\(did you mean: synthetic"
    ):
        build_dataset("synthetc", {})
    with pytest.raises(
        UserInputError, match="data.noise_mx: unknown option \\(did you mean: noise_max"
    ):
        build_dataset("synthetic", {"noise_mx": 0.1})
    with pytest.raises(UserInputError, match="data.n_train: expected an integer, got 'many'"):
        build_dataset("synthetic", {"n_train": "many"})
    with pytest.raises(UserInputError, match="needs data.path, data.label"):
        build_dataset("table", {})
    assert all(name in describe_presets() for name in PRESETS)


@pytest.mark.parametrize(
    ("preset", "options", "message"),
    [
        ("synthetic", {"n_train": True}, "data.n_train: expected an integer, got True"),
        ("synthetic", {"n_train": 2.5}, "data.n_train: expected an integer, got 2.5"),
        ("synthetic", {"mixture": [0.5, 0.5]}, "data.mixture: expected a list of 3 values, got"),
        ("synthetic", {"mixture": [0.5, "x", 0.2]}, "data.mixture[1]: expected a number, got 'x'"),
        ("synthetic", {"rso_beta": [[1, 2, 3]]}, "data.rso_beta[0]: expected a list of 2 values"),
        ("nova", {"ownership": {1: {"signal": "aco"}}}, "data.ownership key: expected a string"),
        ("nova", {"ownership": {"c": {"norm": 3}}}, "data.ownership.c.norm: expected a string"),
        ("nova", {"text": 3}, "data.text: expected a string or null, got 3"),
        ("nova", {"char_ngrams": 3}, "data.char_ngrams: expected a list of integers, got 3"),
    ],
)
def test_option_type_errors_name_the_key_the_value_and_the_type(preset, options, message):
    with pytest.raises(UserInputError) as info:
        build_dataset(preset, options)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_options_are_coerced_to_the_field_types():
    spec = {"n_train": "300", "n_val": 100.0, "n_test": 100, "rso_beta": [[1, 20], [3, 5], [6, 2]]}
    data = build_dataset("synthetic", spec)
    assert len(data.train) == 300 and data.meta["spec"]["rso_beta"] == (
        (1.0, 20.0),
        (3.0, 5.0),
        (6.0, 2.0),
    )


def test_table_preset_takes_table_keys(tmp_path):
    path = _write(_frame(), tmp_path)
    data = build_dataset(
        "table",
        {
            "path": path,
            "label": "label",
            "text": "msg",
            "features": ["a", "b"],
            "ownership": OWNERSHIP,
        },
    )
    assert data.meta["features"] == ["a", "b"] and data.meta["preset"] == "table"
    assert data.train.tokens is not None


@pytest.mark.skipif(not Path(NOVA_PATH).is_file(), reason=f"shared dataset absent: {NOVA_PATH}")
def test_nova_preset_loads_end_to_end():
    data = build_dataset("nova", {})
    assert data.classes == ("DISCUSS", "DOCUMENTATION", "FALSE POSITIVE", "FUNCTION", "REFACTORING")
    assert len(data.train) + len(data.val) + len(data.test) == 1829
    total = (
        data.train_counts()
        + torch.bincount(data.val.y, minlength=5)
        + torch.bincount(data.test.y, minlength=5)
    )
    assert total.tolist() == [446, 387, 158, 240, 598]
    assert data.train.tokens is not None and data.vocab_size > 0
    for own in (data.train.aco, data.train.rso):
        shown = own[~torch.isnan(own)]
        assert shown.min() >= 0 and shown.max() <= 1
    assert not torch.isnan(data.train.x).any()
    assert build_dataset("nova", {"label": "manual_rating"}).classes == ("0", "1", "2")


def _labelled(tmp_path: Path, labels: list[str]) -> str:
    frame = _frame(len(labels))
    frame["label"] = labels
    return _write(frame, tmp_path)


def test_case_variants_are_reported_and_folded_only_when_asked(tmp_path, caplog):
    labels = ["Bug"] * 40 + ["bug"] * 5 + [" doc "] * 3 + ["doc"] * 37 + ["style"] * 35
    path = _labelled(tmp_path, labels)
    kept = load_table(_spec(path))
    assert kept.classes == ("Bug", "bug", "doc", "style")  # whitespace stripped, case kept
    notes = kept.meta["label_notes"]
    assert any("differ from another only in surrounding whitespace" in n for n in notes)
    assert any("'Bug' / 'bug'" in n and "data.fold_labels=true folds them" in n for n in notes)
    assert any("'Bug' / 'bug'" in r.getMessage() for r in caplog.records)  # said, not silent
    folded = load_table(_spec(path, fold_labels=True))
    assert folded.classes == ("Bug", "doc", "style")  # into the most frequent spelling
    counts = sum(torch.bincount(s.y, minlength=3) for s in (folded.train, folded.val, folded.test))
    assert counts.tolist() == [45, 40, 35]


def test_rare_classes_merge_into_other_or_drop(tmp_path):
    labels = ["bug"] * 50 + ["doc"] * 40 + ["typo"] * 4 + ["nit"] * 6
    path = _labelled(tmp_path, labels)
    merged = load_table(_spec(path, min_class_rows=10))
    assert merged.classes == ("bug", "doc", "other")
    total = sum(len(s) for s in (merged.train, merged.val, merged.test))
    assert total == 100
    assert (
        "classes {'nit': 6, 'typo': 4} have fewer than data.min_class_rows=10"
        in (merged.meta["label_notes"][0])
    )
    dropped = load_table(_spec(path, min_class_rows=5, rare_classes="drop"))
    assert dropped.classes == ("bug", "doc", "nit")
    assert sum(len(s) for s in (dropped.train, dropped.val, dropped.test)) == 96
    assert "4 row(s) dropped" in dropped.meta["label_notes"][0]
    with pytest.raises(UserInputError, match="data.min_class_rows=N with data.rare_classes"):
        load_table(_spec(_labelled(tmp_path, ["bug"] * 50 + ["doc"] * 48 + ["x"] * 2)))

"""model=text (issue 16): the packaged all-MiniLM-L6-v2 is verified, frozen embeddings are the
encoder's own and come from the cache the second time, finetune trains the encoder at its own
learning rate, and a frozen search runs end to end on a table's text column."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import trainables.models.encoder as encoder
from trainables.data.table import TableSpec, load_table
from trainables.errors import UserInputError
from trainables.models.encoder import (
    PUBLISHED_SHA256,
    embed_frozen,
    locate,
    strings,
    tokenize,
    verified,
)
from trainables.plugins import DEFAULT_ENCODER, Plugins
from trainables.trial.loop import run_local

WORDS = {"x": "typo in the docstring", "y": "this leaks a file handle", "z": "rename this variable"}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    labels = [["x", "y", "z"][i % 3] for i in range(90)]
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=90),
            "msg": [f"{WORDS[lab]} near line {i}" for i, lab in enumerate(labels)],
            "label": labels,
        }
    )
    path = tmp_path_factory.mktemp("text") / "t.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def data(table):
    return load_table(TableSpec(path=str(table), label="label", text="msg", features=("a",)))


def test_the_packaged_weights_are_the_published_checkpoint(tmp_path):
    folder = Path(locate(DEFAULT_ENCODER))
    with (folder / "model.safetensors").open("rb") as f:
        assert hashlib.file_digest(f, "sha256").hexdigest() == PUBLISHED_SHA256
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the weights")
    with pytest.raises(UserInputError, match="model.safetensors: SHA-256 .* is not the published"):
        verified(fake)


def test_frozen_embeddings_are_the_encoders_and_cached(data, tmp_path, monkeypatch):
    from sentence_transformers import SentenceTransformer

    out = embed_frozen(data, DEFAULT_ENCODER, tmp_path, batch_size=16, progress=False)
    ref = SentenceTransformer(locate(DEFAULT_ENCODER), device="cpu")
    for name in ("train", "val", "test"):
        split, got = getattr(data, name), getattr(out, name)
        want = ref.encode(strings(split), convert_to_tensor=True)
        assert got.x.shape == (len(split), 1 + 384)
        assert torch.equal(got.x[:, :1], split.x)  # the features first, as they were
        assert torch.allclose(got.x[:, 1:], want, atol=1e-5)
        assert got.tokens is None and got.texts is None
    assert out.vocab_size == 0 and len(list(tmp_path.glob("*.safetensors"))) == 3

    def no_encoder(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(encoder, "load", no_encoder)
    again = embed_frozen(data, DEFAULT_ENCODER, tmp_path, batch_size=16, progress=False)
    assert torch.equal(again.train.x, out.train.x)


def test_finetune_trains_the_encoder_at_its_own_learning_rate(data):
    tokens = tokenize(data, DEFAULT_ENCODER)
    ids = tokens.train.tokens
    assert ids.dtype == torch.int64 and bool((ids[:, 0] == 101).all())  # [CLS] first, 0 pads
    states = []
    results = run_local(
        {"train.max_epochs": 1, "train.batch_size": 32, "train.lr": 1e-3},
        tokens,
        plugins=Plugins(model="text", encoder=DEFAULT_ENCODER),
        sink=lambda result, state: states.append(state),
    )
    assert 0 <= results[0]["val_macro_f1"] <= 1
    groups = states[0]["state"]["optim"]["param_groups"]
    assert [g["lr"] for g in groups] == [2e-5, 1e-3]  # the encoder, then the head
    from sentence_transformers import SentenceTransformer

    folder = locate(DEFAULT_ENCODER)
    before = SentenceTransformer(folder, device="cpu")[0].auto_model.embeddings.word_embeddings
    trained = states[0]["state"]["model"]
    [key] = [k for k in trained if k.endswith("embeddings.word_embeddings.weight")]
    assert not torch.equal(trained[key], before.weight.detach())


@pytest.mark.slow
def test_a_frozen_text_search_runs_end_to_end(ray_local, table, tmp_path):
    from helpers import read_record

    from search.config import load_config
    from search.driver import run
    from spaces import load_space

    cfg = load_config(
        [
            "space=baseline",
            "model=text",
            "data=table",
            f"data.path={table}",
            "data.label=label",
            "data.text=msg",
            f"model.cache_dir={tmp_path / 'cache'}",
            f"output_dir={tmp_path / 'out'}",
            "mlflow.enabled=false",
            "search.num_samples=2",
            "train.max_epochs=3",
            "confirm.min_seeds=1",
            "confirm.max_seeds=1",
        ]
    )
    outcome = run(cfg, load_space(cfg.space))
    results = [
        e for e in read_record(outcome.output_dir / "record.jsonl") if e["event"] == "result"
    ]
    assert results and all(e["metrics"]["val_macro_f1"] >= 0 for e in results)
    assert outcome.answer  # the confirmation ran on the same embeddings

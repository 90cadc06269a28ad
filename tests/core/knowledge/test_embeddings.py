"""The offline embedding model (real ONNX weights, no network) and the choice of model."""

from __future__ import annotations

import numpy as np
import pytest
from langchain_openai import OpenAIEmbeddings

from core.knowledge.embeddings import MAX_TOKENS, LocalEmbeddings, build_embeddings
from tests.conftest import MakeSettings
from tests.fakes.fake_openai import FakeOpenAI

DIMENSIONS = 384  # all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def model() -> LocalEmbeddings:
    return LocalEmbeddings(threads=2)


def test_vectors_are_unit_length_and_of_the_model_dimension(model: LocalEmbeddings):
    texts = ["a", "How do I restart the queue worker?", "word " * 400, ""]
    vectors = model.embed_array(texts)
    assert vectors.shape == (len(texts), DIMENSIONS)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert len(model.embed_query("hello")) == DIMENSIONS
    rows = model.embed_documents(["one", "two"])
    assert [len(r) for r in rows] == [DIMENSIONS, DIMENSIONS]


def test_similar_texts_score_higher_than_unrelated_ones(model: LocalEmbeddings):
    query = model.embed_query("Can I bring my dog to the office?")
    pets, queues = model.embed_documents(
        [
            "Dogs are welcome in the office on Fridays.",
            "Set ZQ_BACKLOG_MAX to bound how many jobs wait in the queue.",
        ]
    )
    assert np.dot(query, pets) > np.dot(query, queues) + 0.2


def test_rows_keep_the_order_of_the_texts(model: LocalEmbeddings):
    # Texts run shortest first in groups: each row must still be its own text's vector.
    texts = ["short", "a much longer sentence about databases and queues " * 5, "mid length text"]
    together = model.embed_array(texts)
    for i, text in enumerate(texts):
        alone = model.embed_array([text])[0]
        assert np.allclose(together[i], alone, atol=1e-4), text


def test_many_texts_in_several_batches(model: LocalEmbeddings):
    small = LocalEmbeddings(batch_size=3, threads=2)
    texts = [f"document number {i} about topic {i % 4}" for i in range(10)]
    assert np.allclose(small.embed_array(texts), model.embed_array(texts), atol=1e-4)


def test_no_texts_is_an_empty_array(model: LocalEmbeddings):
    assert model.embed_array([]).shape == (0, DIMENSIONS)


def test_count_tokens_counts_word_pieces_with_cls_and_sep_and_never_truncates(
    model: LocalEmbeddings,
):
    assert model.count_tokens([""]) == [2]  # [CLS] [SEP]
    assert model.count_tokens(["hello"]) == [3]
    one, many = model.count_tokens(["hello world", "hello " * 1000])
    assert one == 4
    assert many == 1002 > MAX_TOKENS


def test_texts_past_the_limit_are_cut_there(model: LocalEmbeddings):
    base = "the queue worker restarts " * 80  # well over MAX_TOKENS
    longer = base + "completely different ending about cats " * 20
    a, b = model.embed_array([base, longer])
    assert np.allclose(a, b, atol=1e-4)


def test_build_embeddings_is_the_local_model_by_default(make_settings: MakeSettings):
    settings = make_settings(embeddings=None, openai_api_key="sk-a-real-looking-key")
    embeddings, name = build_embeddings(settings)
    assert isinstance(embeddings, LocalEmbeddings)
    assert not isinstance(embeddings, OpenAIEmbeddings)
    assert name == LocalEmbeddings.name


async def test_build_embeddings_uses_the_endpoint_only_when_asked(
    make_settings: MakeSettings, fake_openai: FakeOpenAI
):
    settings = make_settings(embeddings="openai")
    embeddings, name = build_embeddings(settings)
    assert isinstance(embeddings, OpenAIEmbeddings)
    assert name == f"openai:{settings.embedding_model}"
    vector = await embeddings.aembed_query("dogs welcome")
    assert len(vector) == 64  # the fake server's vectors
    assert fake_openai.embedding_requests[-1]["model"] == settings.embedding_model

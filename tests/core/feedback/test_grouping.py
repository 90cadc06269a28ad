"""Questions grouped by meaning: the clustering itself, and the threshold on real paraphrases."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from core.feedback.grouping import MIN_SIMILARITY, group, medoid, normalized
from core.knowledge.embeddings import LocalEmbeddings

# The questions MIN_SIMILARITY was chosen on (its comment gives the figures): groups of
# paraphrases, then one-off questions that share words with a group but ask something else.
PARAPHRASES = {
    "rotate": [
        "How do I rotate an API key?", "how to rotate my api key",
        "What's the process for rotating API keys?", "Can I change my API key to a new one?",
        "rotate api token", "How do I regenerate the API key?",
        "I need a new API key, the old one leaked", "api key rotation steps?",
    ],
    "reset": [
        "How do I reset a conversation?", "how to reset the chat",
        "Can I start the conversation over?", "How do I make the bot forget this thread?",
        "reset conversation", "clear the conversation history",
        "How can I reset my conversation with the bot?",
    ],
    "lunch": [
        "What's on the lunch menu today?", "what is for lunch", "lunch menu this week?",
        "What are they serving in the cafeteria today?", "is there pizza for lunch on friday",
        "What's for lunch tomorrow?",
    ],
    "vpn": [
        "How do I connect to the VPN?", "vpn setup on mac", "The VPN won't connect, what do I do?",
        "how to install the vpn client", "VPN keeps disconnecting",
    ],
    "deploy": [
        "How do I deploy to production?", "what's the deploy process",
        "how to ship a release to prod", "steps to deploy the service",
        "how do I deploy a new version?",
    ],
    "password": ["I forgot my password", "how do I reset my password?",
                 "password reset link not working"],
    "parking": ["Where can I park?", "is there parking at the office"],
    "slack": ["How do I add the bot to a Slack channel?", "invite threadbot to my channel"],
    "docker": ["How do I run threadbot in Docker?", "is there a docker image",
               "docker compose setup for the bot", "running it in a container"],
    "model": ["How do I use a different chat model?", "can I switch to llama instead of openai",
              "change the LLM model", "configure Ollama as the model"],
    "ratelimit": ["Why am I getting rate limited?", "429 too many requests error",
                  "slack rate limit when posting"],
    "expense": ["How do I file an expense report?", "where do I submit receipts",
                "expense reimbursement process"],
    "oncall": ["Who is on call this week?", "on-call schedule", "who do I page for an outage"],
}  # fmt: skip
NEAR_MISSES = [
    "What is the wifi password for guests?", "Which Python version do we support?",
    "what time is the all-hands?", "What is the office address?",
    "How do I add a new knowledge base?", "Does the bot read PDFs?", "What's the dress code?",
    "How long are conversations kept?", "How do I revoke a Slack token?",
    "What's for dinner at the offsite?", "How do I reset my 2FA device?",
    "Where is the API documentation?", "How do I delete my account?", "Is the API rate limited?",
]  # fmt: skip


def partition(groups: list[list[int]] | list[tuple[int, ...]]) -> set[frozenset[int]]:
    return {frozenset(g) for g in groups}


def reference_average_linkage(vectors: np.ndarray, threshold: float) -> set[frozenset[int]]:
    """Average linkage the slow, obvious way: merge the two closest groups until none is close."""
    similar = vectors @ vectors.T
    groups = [[i] for i in range(len(vectors))]
    while len(groups) > 1:
        score, a, b = max(
            (float(similar[np.ix_(groups[a], groups[b])].mean()), a, b)
            for a, b in itertools.combinations(range(len(groups)), 2)
        )
        if score < threshold:
            break
        groups[a] += groups.pop(b)
    return partition(groups)


def unit(rows: list[list[float]]) -> np.ndarray:
    vectors = np.asarray(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_nothing_to_group() -> None:
    assert group(np.zeros((0, 4), dtype=np.float32)) == []


def test_close_vectors_group_and_far_ones_stay_apart() -> None:
    vectors = unit([[1, 0.1, 0], [1, 0, 0.1], [0, 1, 0], [0, 1, 0.05], [0, 0, 1]])
    found = group(vectors)
    assert partition([g.rows for g in found]) == partition([[0, 1], [2, 3], [4]])
    assert [g.weight for g in found] == [2, 2, 1]


def test_weights_order_groups_and_count_as_repeated_rows() -> None:
    vectors = unit([[1, 0, 0], [0, 1, 0], [0, 1, 0.1]])
    found = group(vectors, [5, 1, 1])
    assert [(g.rows, g.weight) for g in found] == [((0,), 5), ((1, 2), 2)]
    # A row asked three times is three identical rows: the same groups either way.
    repeated = unit([[1, 0.2, 0], [1, 0.2, 0], [1, 0.2, 0], [0.5, 1, 0], [0, 0, 1]])
    once = unit([[1, 0.2, 0], [0.5, 1, 0], [0, 0, 1]])
    expand = {0: [0, 1, 2], 1: [3], 2: [4]}
    for threshold in (0.5, 0.7, 0.8):
        weighted = group(once, [3, 1, 1], min_similarity=threshold)
        as_rows = [[r for row in g.rows for r in expand[row]] for g in weighted]
        plain = group(repeated, min_similarity=threshold)
        assert partition(as_rows) == partition([g.rows for g in plain]), threshold


def test_the_fast_merge_matches_the_obvious_one() -> None:
    rng = np.random.default_rng(7)
    for n, threshold in ((12, 0.3), (30, 0.2), (40, 0.45), (25, 0.0)):
        centres = rng.normal(size=(4, 8))
        vectors = centres[rng.integers(0, 4, n)] + rng.normal(scale=0.8, size=(n, 8))
        vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
        found = partition([g.rows for g in group(vectors, min_similarity=threshold)])
        assert found == reference_average_linkage(vectors, threshold), (n, threshold)


def test_the_medoid_is_the_member_most_like_the_others() -> None:
    vectors = unit([[1, 0.3, 0], [1, 0, 0], [1, -0.3, 0], [0, 1, 0]])
    assert medoid(vectors, [0, 1, 2], [1, 1, 1]) == 1
    assert medoid(vectors, [0, 2], [1, 3]) == 2  # of two, the one asked more often
    assert medoid(vectors, [3], [1]) == 3


def test_questions_are_the_same_text_whatever_their_case_and_spacing() -> None:
    assert normalized("  How do I\n reset   it? ") == normalized("how do i reset it?")


@pytest.fixture(scope="module")
def embeddings() -> LocalEmbeddings:
    return LocalEmbeddings()


def test_paraphrases_group_and_near_misses_stay_apart(embeddings: LocalEmbeddings) -> None:
    texts = [q for qs in PARAPHRASES.values() for q in qs] + NEAR_MISSES
    labels = [k for k, qs in PARAPHRASES.items() for _ in qs] + NEAR_MISSES  # each its own
    found = group(embeddings.embed_array(texts))
    where = {row: n for n, g in enumerate(found) for row in g.rows}

    def together(a: str, b: str) -> bool:
        return where[texts.index(a)] == where[texts.index(b)]

    pairs = list(itertools.combinations(range(len(texts)), 2))
    grouped = [(i, j) for i, j in pairs if where[i] == where[j]]
    right = sum(labels[i] == labels[j] for i, j in grouped)
    same = sum(labels[i] == labels[j] for i, j in pairs)
    assert right / len(grouped) >= 0.95  # precision: 0.99 at MIN_SIMILARITY = 0.50
    assert right / same >= 0.70  # recall: 0.75
    for label in ("rotate", "lunch", "vpn", "password"):
        assert len({where[texts.index(q)] for q in PARAPHRASES[label]}) == 1, label
    assert together("how to rotate my api key", "I need a new API key, the old one leaked")
    for apart, of in [
        ("What is the wifi password for guests?", "I forgot my password"),
        ("How long are conversations kept?", "How do I reset a conversation?"),
        ("How do I reset my 2FA device?", "how do I reset my password?"),
        ("How do I delete my account?", "I forgot my password"),
        ("Where is the API documentation?", "How do I rotate an API key?"),
        ("how do I reset my password?", "How do I reset a conversation?"),
    ]:
        assert not together(apart, of), (apart, of)


def test_grouping_does_not_depend_on_the_order_asked(embeddings: LocalEmbeddings) -> None:
    texts = [q for qs in PARAPHRASES.values() for q in qs] + NEAR_MISSES
    vectors = embeddings.embed_array(texts)
    expected = {frozenset(texts[r] for r in g.rows) for g in group(vectors)}
    order = list(range(len(texts)))
    random.Random(3).shuffle(order)
    shuffled = {frozenset(texts[order[r]] for r in g.rows) for g in group(vectors[order])}
    assert shuffled == expected
    assert MIN_SIMILARITY == 0.50  # the figures in its comment and the asserts above are for it

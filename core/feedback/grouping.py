"""Questions grouped by meaning: average-linkage clustering of their embeddings, cut at a
cosine similarity, for `threadbot report`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Two groups merge while the mean cosine similarity between their members is at least this.
# Tuned with the default local model (all-MiniLM-L6-v2) on 69 realistic questions: 13 groups of
# paraphrases (8 ways to ask how to rotate an API key, 7 to reset a conversation, lunch, VPN,
# deploys, passwords...) and 14 one-off near misses ("What is the wifi password for guests?",
# "How long are conversations kept?", "How do I reset my 2FA device?"); they are in
# tests/core/feedback/test_grouping.py. Pairwise precision / recall: 0.40 gives .87 / .92 but
# puts 2FA and account deletion with password resets; 0.46 gives .91 / .77 with the offsite
# dinner among the lunch menus; 0.50 gives .99 / .75, its one mixed pair arguably right ("Is the
# API rate limited?" with the 429 errors); by 0.56 recall falls to .46 as paraphrases split.
# Precision first: a split group is two rows of the report, a merged one hides a question.
# Another embedding model has its own scale: check its groups before trusting this number.
MIN_SIMILARITY = 0.50


def normalized(question: str) -> str:
    """The form under which two questions count as the same text: case and spacing ignored."""
    return re.sub(r"\s+", " ", question).strip().casefold()


@dataclass(frozen=True)
class Grouped:
    """One group: the rows it holds (into the vectors given), heaviest first, and its medoid
    (the row most similar on average to the others, weighted), which represents it."""

    rows: tuple[int, ...]
    medoid: int
    weight: int


def group(
    vectors: np.ndarray,
    weights: Sequence[int] | None = None,
    *,
    min_similarity: float = MIN_SIMILARITY,
) -> list[Grouped]:
    """Rows of `vectors` (one per distinct question, `weights[i]` times asked) grouped by
    average linkage until no two groups are `min_similarity` alike; the heaviest group first.

    Deterministic and independent of the rows' order but for ties. Memory is the similarity
    matrix: 4·n² bytes (100 MB for 5,000 distinct questions); time about n² per merge step's
    bookkeeping, with numpy doing the rows.
    """
    n = len(vectors)
    if n == 0:
        return []
    sizes = np.asarray(weights if weights is not None else [1] * n, dtype=np.float64)
    unit = np.asarray(vectors, dtype=np.float32)
    unit = unit / np.clip(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12, None)
    similar = unit @ unit.T
    np.fill_diagonal(similar, -np.inf)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    best = similar.max(axis=1)  # each group's most similar other group
    nearest = similar.argmax(axis=1)
    while len(members) > 1:
        a = int(np.argmax(best))
        if best[a] < min_similarity:
            break
        b = int(nearest[a])
        # Lance-Williams for average linkage: the merged row is the size-weighted mean.
        merged = (sizes[a] * similar[a] + sizes[b] * similar[b]) / (sizes[a] + sizes[b])
        similar[a], similar[:, a] = merged, merged
        similar[a, a] = -np.inf
        similar[b], similar[:, b] = -np.inf, -np.inf
        sizes[a] += sizes[b]
        members[a] += members.pop(b)
        best[b] = -np.inf
        # Rows whose nearest group was a or b may have lost it; others may now prefer a.
        stale = np.flatnonzero((nearest == a) | (nearest == b))
        for row in [a, *(int(r) for r in stale if r != a and r in members)]:
            best[row], nearest[row] = similar[row].max(), similar[row].argmax()
        closer = merged > best
        closer[a] = False
        best[closer], nearest[closer] = merged[closer], a
    weight = [int(w) for w in (weights if weights is not None else [1] * n)]
    groups = []
    for rows in members.values():
        ordered = sorted(rows, key=lambda r: (-weight[r], r))
        held = [weight[r] for r in ordered]
        groups.append(Grouped(tuple(ordered), medoid(unit, ordered, held), sum(held)))
    return sorted(groups, key=lambda g: (-g.weight, min(g.rows)))


def medoid(vectors: np.ndarray, rows: Sequence[int], weights: Sequence[int]) -> int:
    """The row of `rows` most similar to the others, each counted `weights[i]` times (itself
    included): the question that best stands for its group. Ties go to the earlier row."""
    if len(rows) <= 2:  # each is as close to the other: the heavier one, or the first
        return rows[int(np.argmax(weights))]
    picked = np.asarray(vectors, dtype=np.float32)[list(rows)]
    picked = picked / np.clip(np.linalg.norm(picked, axis=1, keepdims=True), 1e-12, None)
    pull = (picked @ picked.T) @ np.asarray(weights, dtype=np.float32)
    return rows[int(np.argmax(pull))]

"""The shared index on a real 3-node Redis Cluster: its parts spread over the nodes, and a
worker with an empty data folder follows it, with the tests of `test_shared_index` run again."""

from __future__ import annotations

import pytest

from tests.core.knowledge.test_shared_index import (  # noqa: F401 (fixtures and tests, run on the cluster)
    embeddings,
    first,
    redis,
    test_a_new_publish_is_followed_and_the_one_before_kept_one_round,
    test_a_planted_pickle_is_never_loaded,
    test_a_running_pipeline_switches_in_the_background,
    test_a_worker_with_an_empty_data_folder_answers_from_the_published_index,
    worker,
)


@pytest.fixture
def redis_url(redis_cluster_url: str) -> str:
    """Every client in this module talks to the cluster."""
    return redis_cluster_url

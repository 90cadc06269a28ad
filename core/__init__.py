"""threadbot core: answers for a session, streamed; knows no chat platform.

Adapters (`bots/`) and benchmarks (`bench/`) use only what `__all__` names.
"""

from core import sessions
from core.embeddings import build_embeddings
from core.errors import (
    Busy,
    HistoryUnavailable,
    MessageGone,
    MessageTooLong,
    ModelFailed,
    QuestionRejected,
    RateLimited,
    RetrievalFailed,
    SinkError,
    ThreadbotError,
)
from core.ingest import ingest
from core.pipeline import Pipeline
from core.retrieval import Retriever
from core.settings import Settings
from core.streaming import MARKER, Reply, Sink, StreamingEditor, split_text
from core.tasks import SessionTasks

__all__ = [
    "MARKER",
    "Busy",
    "HistoryUnavailable",
    "MessageGone",
    "MessageTooLong",
    "ModelFailed",
    "Pipeline",
    "QuestionRejected",
    "RateLimited",
    "Reply",
    "RetrievalFailed",
    "Retriever",
    "SessionTasks",
    "Settings",
    "Sink",
    "SinkError",
    "StreamingEditor",
    "ThreadbotError",
    "build_embeddings",
    "ingest",
    "sessions",
    "split_text",
]

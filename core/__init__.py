"""threadbot core: answers for a session, streamed; knows no chat platform.

Adapters (`bots/`) and benchmarks (`bench/`) use only what `__all__` names
(tests/test_public_surface.py checks it).
"""

from core import redis_client, sessions, shared_index
from core.chain import build_answerer
from core.embeddings import build_embeddings
from core.errors import (
    Busy,
    HistoryUnavailable,
    MessageGone,
    MessageTooLong,
    ModelFailed,
    NoAccess,
    QuestionRejected,
    RateLimited,
    RetrievalFailed,
    SinkError,
    StreamRefused,
    ThreadbotError,
)
from core.health import Health
from core.ingest import ingest
from core.keywords import KeywordIndex
from core.logs import TextFormatter
from core.metrics import Metrics
from core.pacing import Pacer, Ticket
from core.pipeline import Pipeline
from core.redis_server import EmbeddedRedis, EmbeddedServerBusy
from core.retrieval import Chunk, Index, Passage, Retriever, printable
from core.settings import Settings
from core.status import index_summary
from core.streaming import MARKER, AppendSink, Preparing, Reply, Sink, StreamingEditor
from core.turns import TurnRunner
from core.types import Outcome, ReplySink, Resumable, SinkFor, Turn

__all__ = [
    "MARKER",
    "AppendSink",
    "Busy",
    "Chunk",
    "EmbeddedRedis",
    "EmbeddedServerBusy",
    "Health",
    "HistoryUnavailable",
    "Index",
    "KeywordIndex",
    "MessageGone",
    "MessageTooLong",
    "Metrics",
    "ModelFailed",
    "NoAccess",
    "Outcome",
    "Pacer",
    "Passage",
    "Pipeline",
    "Preparing",
    "QuestionRejected",
    "RateLimited",
    "Reply",
    "ReplySink",
    "Resumable",
    "RetrievalFailed",
    "Retriever",
    "Settings",
    "Sink",
    "SinkError",
    "SinkFor",
    "StreamRefused",
    "StreamingEditor",
    "TextFormatter",
    "ThreadbotError",
    "Ticket",
    "Turn",
    "TurnRunner",
    "build_answerer",
    "build_embeddings",
    "index_summary",
    "ingest",
    "printable",
    "redis_client",
    "sessions",
    "shared_index",
]

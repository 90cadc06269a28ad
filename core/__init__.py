"""threadbot core: answers for a session, streamed; knows no chat platform.

Adapters (`bots/`) and benchmarks (`bench/`) use only what `__all__` names
(tests/test_public_surface.py checks it).
"""

from core.answer.answerers import build_answerer
from core.answer.asked import Asked, AskedFor, Attachment, Earlier, Said, Step
from core.answer.pipeline import Pipeline
from core.errors import (
    Busy,
    ConfigInvalid,
    EmbeddedServerBusy,
    FileRefused,
    HistoryUnavailable,
    KnowledgeError,
    MessageGone,
    MessageTooLong,
    ModelFailed,
    NoAccess,
    NotAllowed,
    QuestionRejected,
    RateLimited,
    RetrievalFailed,
    SinkError,
    StreamEnded,
    StreamRefused,
    ThreadbotError,
    ThreadbotException,
)
from core.feedback.formats import REPORT_FORMATS, ReportFormat, render_report
from core.feedback.records import Answered
from core.feedback.report import Report, gather_report
from core.feedback.votes import Feedback, Verdict
from core.knowledge import shared_index
from core.knowledge.embeddings import build_embeddings
from core.knowledge.ingest import ingest
from core.knowledge.keywords import KeywordIndex
from core.knowledge.retrieval import Chunk, Index, Passage, Retriever, printable
from core.knowledge.status import index_summary
from core.ops.health import Health
from core.ops.logs import TextFormatter, configure_logging
from core.ops.metrics import Metrics
from core.policy.answering import access_for, reply_mode_for
from core.policy.audience import Where
from core.policy.config import NO_POLICIES, Policies, PolicyFile
from core.reply.editor import MARKER, Reply, StreamingEditor
from core.reply.pacing import Pacer, Ticket
from core.reply.sinks import AppendSink, Preparing, Sink
from core.settings import DEFAULT_BASE, ReplyMode, Settings, period_s
from core.store import redis_client, sessions
from core.store.redis_server import EmbeddedRedis
from core.turn.access import AccessRules
from core.turn.modes import ReplyModes, worth_answering
from core.turn.runner import TurnRunner
from core.turn.types import (
    AnyReplySink,
    Outcome,
    ReplySink,
    Resumable,
    ShowsSteps,
    SinkFor,
    StreamReplySink,
    TakesFeedback,
    Turn,
)

__all__ = [
    "DEFAULT_BASE",
    "MARKER",
    "NO_POLICIES",
    "REPORT_FORMATS",
    "AccessRules",
    "Answered",
    "AnyReplySink",
    "AppendSink",
    "Asked",
    "AskedFor",
    "Attachment",
    "Busy",
    "Chunk",
    "ConfigInvalid",
    "Earlier",
    "EmbeddedRedis",
    "EmbeddedServerBusy",
    "Feedback",
    "FileRefused",
    "Health",
    "HistoryUnavailable",
    "Index",
    "KeywordIndex",
    "KnowledgeError",
    "MessageGone",
    "MessageTooLong",
    "Metrics",
    "ModelFailed",
    "NoAccess",
    "NotAllowed",
    "Outcome",
    "Pacer",
    "Passage",
    "Pipeline",
    "Policies",
    "PolicyFile",
    "Preparing",
    "QuestionRejected",
    "RateLimited",
    "Reply",
    "ReplyMode",
    "ReplyModes",
    "ReplySink",
    "Report",
    "ReportFormat",
    "Resumable",
    "RetrievalFailed",
    "Retriever",
    "Said",
    "Settings",
    "ShowsSteps",
    "Sink",
    "SinkError",
    "SinkFor",
    "Step",
    "StreamEnded",
    "StreamRefused",
    "StreamReplySink",
    "StreamingEditor",
    "TakesFeedback",
    "TextFormatter",
    "ThreadbotError",
    "ThreadbotException",
    "Ticket",
    "Turn",
    "TurnRunner",
    "Verdict",
    "Where",
    "access_for",
    "build_answerer",
    "build_embeddings",
    "configure_logging",
    "gather_report",
    "index_summary",
    "ingest",
    "period_s",
    "printable",
    "redis_client",
    "render_report",
    "reply_mode_for",
    "sessions",
    "shared_index",
    "worth_answering",
]

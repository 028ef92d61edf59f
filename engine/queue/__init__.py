"""Job queue between the story engine (producer) and the model workers."""

from engine.queue.config import QueueConfig
from engine.queue.errors import (
    JobRejected,
    QueueClosed,
    QueueError,
    QueueFull,
    QueueUnavailable,
    SessionBusy,
)
from engine.queue.factory import open_queue, open_worker_queue
from engine.queue.interfaces import (
    BatchOutcome,
    BatchProcessor,
    Delivery,
    GeneratedText,
    JobQueue,
    ProgressCallback,
    WorkerQueue,
)
from engine.queue.jobs import (
    FinalEvent,
    GenerationJob,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobKind,
    JobProgress,
)
from engine.queue.memory_queue import MemoryQueue
from engine.queue.redis_queue import RedisJobQueue, RedisWorkerQueue

__all__ = [
    "BatchOutcome",
    "BatchProcessor",
    "Delivery",
    "FinalEvent",
    "GeneratedText",
    "GenerationJob",
    "JobCompleted",
    "JobEvent",
    "JobFailed",
    "JobKind",
    "JobProgress",
    "JobQueue",
    "JobRejected",
    "MemoryQueue",
    "ProgressCallback",
    "QueueClosed",
    "QueueConfig",
    "QueueError",
    "QueueFull",
    "QueueUnavailable",
    "RedisJobQueue",
    "RedisWorkerQueue",
    "SessionBusy",
    "WorkerQueue",
    "open_queue",
    "open_worker_queue",
]

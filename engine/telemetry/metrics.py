"""Prometheus metrics of the bot and of each worker, and the endpoint that serves them.

Every metric is defined here, once per process (prometheus-client's default registry,
which also carries the process and Python collectors). Code that counts something
imports the metric and counts; ``serve_metrics`` opens ``/metrics`` when a port is set.
The README's "Operations" section lists them all.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)

# The queue, as the bot samples it every few seconds ----------------------------------------
QUEUE_DEPTH = Gauge("taleweaver_queue_depth", "Jobs waiting for a worker")
QUEUE_RUNNING = Gauge(
    "taleweaver_queue_jobs_running", "Jobs handed to a worker and not finished (all workers)"
)
QUEUE_OLDEST_JOB_AGE = Gauge(
    "taleweaver_queue_oldest_job_age_seconds", "Age of the oldest job in flight (0: none)"
)
QUEUE_DEAD_LETTERS = Gauge(
    "taleweaver_queue_dead_letters", "Jobs set aside after repeated failures"
)
WORKERS_ALIVE = Gauge("taleweaver_workers_alive", "Workers whose heartbeat is alive")
QUEUE_ERRORS = Counter(
    "taleweaver_queue_errors_total",
    "Queue failures: unreachable Redis, unreadable messages",
    ["kind"],
)

# Stories, as the bot samples them from the database -----------------------------------------
STORIES = Gauge("taleweaver_stories", "Stories by state (lobby, active, paused, ended)", ["state"])
NARRATIONS_PENDING = Gauge(
    "taleweaver_narrations_pending",
    "Stories waiting for a narrator passage, by the story's state",
    ["state"],
)
DATABASE_ERRORS = Counter(
    "taleweaver_database_errors_total", "Database errors, by SQLAlchemy error class", ["kind"]
)

# Rules and safety ---------------------------------------------------------------------------
FILTER_DECISIONS = Counter(
    "taleweaver_filter_decisions_total",
    "Audited filter decisions, by rule and action (refused, regenerated, replaced, …)",
    ["rule", "action"],
)
RATE_LIMIT_REFUSALS = Counter(
    "taleweaver_rate_limit_refusals_total", "Actions refused by a rate limit", ["rule"]
)

# Discord ------------------------------------------------------------------------------------
DISCORD_RATE_LIMITS = Counter(
    "taleweaver_discord_rate_limits_total",
    "HTTP 429 answers from Discord (discord.py waits and retries them), by scope",
    ["scope"],
)
DISCORD_FAILED_POSTS = Counter(
    "taleweaver_discord_failed_posts_total",
    "Messages the bot could not post or edit, by HTTP status",
    ["status"],
)

# The model worker ---------------------------------------------------------------------------
WORKER_JOBS_IN_FLIGHT = Gauge(
    "taleweaver_worker_jobs_in_flight", "Jobs this worker is generating right now"
)
WORKER_BATCH_SIZE = Histogram(
    "taleweaver_worker_batch_size", "Jobs generated together in one batch", buckets=_BATCH_BUCKETS
)
GENERATION_SECONDS = Histogram(
    "taleweaver_generation_seconds",
    "Time from a batch's start to a job's text, by job kind",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
)
TIME_TO_FIRST_TEXT = Histogram(
    "taleweaver_time_to_first_text_seconds",
    "Time from a job's enqueueing to its first partial text",
    buckets=_LATENCY_BUCKETS,
)
GENERATED_TOKENS = Counter(
    "taleweaver_generated_tokens_total", "Tokens generated (rate() of it is tokens per second)"
)
TOKENS_PER_SECOND = Gauge(
    "taleweaver_tokens_per_second", "Tokens per second of the latest batch, all its jobs together"
)
PROMPT_TOKENS = Counter(
    "taleweaver_prompt_tokens_total",
    "Prompt tokens of generation requests: read (prefilled) or reused from the prefix cache",
    ["source"],
)
PREFIX_CACHE_LOOKUPS = Counter(
    "taleweaver_prefix_cache_lookups_total",
    "Prompts looked up in the prefix cache, by result (hit, miss)",
    ["result"],
)
WORKER_JOBS = Counter(
    "taleweaver_worker_jobs_total",
    "Jobs this worker finished, by outcome (completed, failed, released)",
    ["outcome"],
)


_tokens_lock = threading.Lock()
_tokens_generated = 0


def count_generated_tokens(tokens: int) -> None:
    """Count tokens a model generated (called from the worker's generation thread)."""
    global _tokens_generated
    with _tokens_lock:
        _tokens_generated += tokens
    GENERATED_TOKENS.inc(tokens)


def generated_token_count() -> int:
    """Return the tokens generated in this process so far."""
    with _tokens_lock:
        return _tokens_generated


@dataclass
class MetricsEndpoint:
    """A running /metrics endpoint; ``port`` is the one it listens on."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def start_metrics_endpoint(host: str, port: int) -> MetricsEndpoint:
    """Serve the metrics at http://HOST:PORT/metrics from a thread (port 0: any free port)."""
    server, thread = start_http_server(port, addr=host)
    endpoint = MetricsEndpoint(host, server.server_port, server, thread)
    log.info("serving metrics at http://%s:%d/metrics", host, endpoint.port)
    return endpoint


@contextlib.contextmanager
def serve_metrics(host: str, port: int | None) -> Iterator[MetricsEndpoint | None]:
    """Serve /metrics for the block's duration when PORT is set; otherwise do nothing."""
    if port is None:
        yield None
        return
    endpoint = start_metrics_endpoint(host, port)
    try:
        yield endpoint
    finally:
        endpoint.close()

"""The server's Prometheus metrics (prometheus-client, text format at GET /metrics), in a registry of
their own so that several servers (tests) can live in one process."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: from a few milliseconds (a warm decode step) to minutes (a long answer on a CPU).
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    def __init__(self, load: Callable[[], tuple[int, int]]):
        """load: () -> (requests waiting, slots busy), read at each scrape."""
        self.registry = CollectorRegistry()
        self.requests = Counter("biomed_requests", "HTTP requests answered, by path and status code",
                                ["path", "status"], registry=self.registry)
        self.prompt_tokens = Counter("biomed_prompt_tokens", "Prompt tokens of finished completions",
                                     registry=self.registry)
        self.completion_tokens = Counter("biomed_completion_tokens", "Generated tokens of finished completions",
                                         registry=self.registry)
        self.finished = Counter("biomed_completions", "Completions finished, by reason (stop, length, "
                                "cancelled, error)", ["reason"], registry=self.registry)
        waiting = Gauge("biomed_queue_depth", "Requests waiting for a decode slot", registry=self.registry)
        busy = Gauge("biomed_busy_slots", "Decode slots in use", registry=self.registry)
        waiting.set_function(lambda: load()[0])
        busy.set_function(lambda: load()[1])
        self.time_to_first_token = Histogram("biomed_time_to_first_token_seconds",
                                             "From a request's arrival to its first token",
                                             buckets=_BUCKETS, registry=self.registry)
        self.latency = Histogram("biomed_request_latency_seconds", "From a request's arrival to its last token",
                                 buckets=_BUCKETS, registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)

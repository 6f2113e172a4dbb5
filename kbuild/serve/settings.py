"""The server's knobs, in one place (the CLI options map onto these fields)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSettings:
    """Args:
        batching: merge concurrent requests to one model into one call (True), or run each
            request on its own in a worker thread (False).
        max_batch_size: most instances in one merged call; also caps a single request.
        max_wait_ms: how long the first request of a batch waits for company.
        max_body_bytes: larger request bodies are refused with 413.
        threads: worker threads that run models off the event loop.
        poll_s: seconds between looks at the export folder for new versions (TF Serving's
            --file_system_poll_wait_seconds); 0 serves the versions loaded at start only.
    """

    batching: bool = True
    max_batch_size: int = 64
    max_wait_ms: float = 5.0
    max_body_bytes: int = 4 * 2**20
    threads: int = 4
    poll_s: float = 1.0

"""Hand-made DCGM exporters on 127.0.0.1: real HTTP answers the test sets per path."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from backend.telemetry.scrape import ScrapeTarget


class Exporters:
    """Per-path responses the test can change between rounds; records request headers."""

    def __init__(self) -> None:
        self.responses: dict[str, tuple[int, str]] = {}
        self.headers: dict[str, dict[str, str]] = {}
        self.delay: dict[str, float] = {}
        self.url = ""

    def target(self, path: str, node: str | None = None, **headers: str) -> ScrapeTarget:
        return ScrapeTarget(url=f"{self.url}{path}", node=node, headers=headers)


class ExporterServer(ThreadingHTTPServer):
    """A round connects to up to 64 exporters at once: the default backlog of 5 dropped the
    connections beyond it, and their retries outlasted the scrape timeout."""

    request_queue_size = 128


@contextlib.contextmanager
def running_exporters() -> Iterator[Exporters]:
    """An HTTP server answering ``Exporters.responses`` (404 for other paths) until exit."""
    state = Exporters()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.headers[self.path] = dict(self.headers)
            time.sleep(state.delay.get(self.path, 0.0))
            status, body = state.responses.get(self.path, (404, "not found"))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (timeout test)
                self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ExporterServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()

"""Reading metrics pages (fetch, then parse) in the backend's event loop or in a worker process.

A round on a large fleet reads thousands of pages: an exporter per GPU node and a model server
per release pod, most through the API server's pod proxy over TLS. Fetching them (aiohttp) and
parsing the text cost about 40 % of a core on the large sandbox fleet. Done in the backend's
own process, that work shares the event loop and the GIL with the API, and reads under load
waited behind it (a p99 of seconds with 50 clients). ``WorkerPages`` does it in a separate
process, which sends back only the parsed results; ``LoopPages`` does it in the current event
loop (parsing in a thread), for tests and small fleets.

The worker sends its results pickled in slices of ``GROUPS_PER_SLICE`` groups, and the backend
unpickles one slice per turn of its event loop: a round's 8,000 GPUs unpickled at once held the
GIL, and every request in flight, for ~35 ms on a slow core.

A ``PageGroup`` is the pages of one source (an exporter; a model server pod's ports) and the
module-level function that parses them: it travels to the worker by name. A group's result is
what its parser returned, or why it could not be read: a failing source never fails the round.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from backend.reads_first import in_turns

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger(__name__)

# How much less CPU priority the worker process has than the backend (``nice``): on a machine
# with few cores a round's parsing would otherwise take the CPU from the requests in flight.
WORKER_NICENESS = 10
# Ask for the classic text format: OpenMetrics differs in details the parser need not know.
ACCEPT = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
HTTP_PROXY_SCHEMES = ("http://", "https://")
# Groups whose results the worker pickles together: 64 exporters are ~500 GPUs, ~2 ms to unpickle.
GROUPS_PER_SLICE = 64


@dataclass(frozen=True)
class TlsFiles:
    """TLS settings as files (a kubeconfig's, once the client wrote them out): unlike an
    ``ssl.SSLContext`` they can be sent to a worker process."""

    ca_file: str | None = None
    verify: bool = True
    cert_file: str | None = None
    key_file: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file or None)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


Verify = bool | str | ssl.SSLContext | TlsFiles


def tls_verification(verify: Verify) -> bool | ssl.SSLContext:
    """aiohttp's ``ssl``: True verifies with the system CAs, False skips verification, and a CA
    file or folder path, or TLS files, become an SSL context."""
    if isinstance(verify, TlsFiles):
        return verify.context()
    if not isinstance(verify, str):
        return verify
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


@dataclass(frozen=True)
class FetchOptions:
    """How pages are fetched: TLS verification, requests in flight, seconds per page."""

    verify: Verify = True
    concurrency: int = 64
    timeout: float = 5.0


@dataclass(frozen=True)
class PageGroup:
    """The pages of one source, read one after the other, and their parser: ``parse(texts,
    *args)`` (module-level, so that a worker process can import it)."""

    urls: tuple[str, ...]
    parse: Callable[..., Any]
    args: tuple[Any, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    proxy: str | None = None


PageResult = tuple[Any, str | None]  # what the parser returned, or None and why


class ScrapeFailed(RuntimeError):
    """A scrape that answered no metrics text: why, in an operator's words."""


class Pages(Protocol):
    """Reads groups of pages; one result per group, in order."""

    async def read(self, groups: Sequence[PageGroup]) -> list[PageResult]: ...

    async def close(self) -> None: ...


async def fetch_text(
    http: aiohttp.ClientSession,
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    proxy: str | None = None,
) -> str:
    """The page's text; raises ScrapeFailed for an HTTP error or a timeout."""
    import aiohttp  # loaded with the session (``LoopPages._http``)

    try:
        async with (
            asyncio.timeout(timeout),
            http.get(url, headers={"Accept": ACCEPT, **(headers or {})}, proxy=proxy) as response,
        ):
            if response.status >= 400:
                raise ScrapeFailed(f"HTTP {response.status} {response.reason}")
            return await response.text(errors="replace")
    except TimeoutError:
        raise ScrapeFailed(f"timed out after {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ScrapeFailed(f"{type(exc).__name__}: {exc}") from None


class LoopPages:
    """Fetches in the current event loop; parses in a thread (``parse_in_thread``), so that the
    loop's other tasks run between the fetches rather than after thousands of parses."""

    def __init__(self, options: FetchOptions, *, parse_in_thread: bool = True) -> None:
        self.options = options
        self.parse_in_thread = parse_in_thread
        self._session: aiohttp.ClientSession | None = None

    async def read(self, groups: Sequence[PageGroup]) -> list[PageResult]:
        semaphore = asyncio.Semaphore(self.options.concurrency)
        fetched = await asyncio.gather(*(self._fetch(group, semaphore) for group in groups))
        if self.parse_in_thread:
            return await asyncio.to_thread(_parse_all, groups, fetched)
        return _parse_all(groups, fetched)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _fetch(
        self, group: PageGroup, semaphore: asyncio.Semaphore
    ) -> tuple[list[str], str | None]:
        """The group's pages, or why one of them could not be read."""
        if group.proxy and not group.proxy.startswith(HTTP_PROXY_SCHEMES):
            # aiohttp speaks only HTTP to a proxy: a SOCKS proxy would fail obscurely.
            scheme = group.proxy.split("://")[0]
            return [], f"proxy {scheme}:// is not supported, only http(s)://"
        texts = []
        async with semaphore:
            for url in group.urls:
                try:
                    texts.append(
                        await fetch_text(
                            self._http(), url, self.options.timeout, group.headers, group.proxy
                        )
                    )
                except ScrapeFailed as exc:
                    return [], str(exc)
                except Exception as exc:  # one broken source must not break the round
                    log.debug("reading %s failed", url, exc_info=True)
                    return [], f"{type(exc).__name__}: {exc}"
        return texts, None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Imported on the first read: the backend reads its pages in a worker process, so
            # its own start (while the cluster is listed) need not pay for aiohttp.
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=self.options.concurrency, ssl=tls_verification(self.options.verify)
            )
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session


def _parse_all(
    groups: Sequence[PageGroup], fetched: Sequence[tuple[list[str], str | None]]
) -> list[PageResult]:
    results: list[PageResult] = []
    for group, (texts, error) in zip(groups, fetched, strict=True):
        if error is not None:
            results.append((None, error))
            continue
        try:
            results.append((group.parse(texts, *group.args), None))
        except Exception as exc:  # a page that does not parse fails its source only
            results.append((None, f"{type(exc).__name__}: {exc}"))
    return results


class WorkerPages:
    """Reads in a worker process of its own (started on the first read, started again after
    it died); see the module docstring."""

    def __init__(self, options: FetchOptions) -> None:
        if isinstance(options.verify, ssl.SSLContext):
            raise TypeError("a worker process needs TLS settings as files (TlsFiles)")
        self.options = options
        self._pool: ProcessPoolExecutor | None = None

    async def read(self, groups: Sequence[PageGroup]) -> list[PageResult]:
        if not groups:
            return []
        loop = asyncio.get_running_loop()
        try:
            slices = await loop.run_in_executor(
                self._executor(), _read_in_worker, list(groups), self.options
            )
        except BrokenProcessPool:
            log.warning("the scrape worker process stopped; a new one starts for the next round")
            self._shut()
            return [(None, "the scrape worker process stopped; retried next round")] * len(groups)
        results: list[PageResult] = []
        async for batch in in_turns(slices, 1):  # a slice of results per turn of the loop
            for pickled in batch:
                results.extend(pickle.loads(pickled))
        return results

    async def close(self) -> None:
        self._shut()

    async def worker_pid(self) -> int:
        """The worker's process id (it starts if it has not)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor(), os.getpid)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_worker_started,
            )
        return self._pool

    def _shut(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def page_reader(options: FetchOptions, in_worker: bool) -> Pages:
    """Where a collector's pages are read: a worker process of its own, or this event loop."""
    return WorkerPages(options) if in_worker else LoopPages(options)


def _worker_started() -> None:
    """Ctrl-C in the terminal reaches the whole process group: the backend stops its worker.
    A round is background work: when the CPU is short, answering requests comes first (a round
    of the large fleet's 1,000 exporters took both cores of a small machine for seconds, and the
    reads' p99 rose from ~25 to ~160 ms meanwhile)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)


_worker_loop: asyncio.AbstractEventLoop | None = None
_worker_pages: dict[FetchOptions, LoopPages] = {}


def _read_in_worker(groups: list[PageGroup], options: FetchOptions) -> list[bytes]:
    """In the worker process: one loop and one connection pool per options, kept between
    rounds (a TLS handshake per page per round would cost more than the pages). The results
    go back pickled in slices (see the module docstring)."""
    global _worker_loop
    if _worker_loop is None:
        _worker_loop = asyncio.new_event_loop()
    pages = _worker_pages.get(options)
    if pages is None:
        pages = _worker_pages[options] = LoopPages(options, parse_in_thread=False)
    results = _worker_loop.run_until_complete(pages.read(groups))
    return [
        pickle.dumps(results[start : start + GROUPS_PER_SLICE], pickle.HIGHEST_PROTOCOL)
        for start in range(0, len(results), GROUPS_PER_SLICE)
    ]

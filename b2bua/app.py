"""Wiring and lifecycle: the only module that knows every part.

`Application.start()` opens the store, binds every SIP listener and the HTTP
listener, and logs where it listens; `stop()` drains in the reverse order.
`run(config)` is what `b2bua serve` calls: it runs the application on uvloop
(when installed) until SIGTERM or SIGINT and returns the process exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from b2bua.api.app import create_api
from b2bua.app_sip import StatelessCore
from b2bua.config import Config, server_ssl_context
from b2bua.observability.logging import get_logger
from b2bua.sip import ParseError
from b2bua.transport.base import Source, send_all
from b2bua.transport.tcp import TcpTransport, start_tcp
from b2bua.transport.udp import UdpTransport, start_udp

log = get_logger(__name__)

# How long stop() waits for queued TCP writes and in-flight HTTP requests.
DRAIN_TIMEOUT_S = 5.0


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Dispatcher:
    """The MessageSink the transports feed: core in, `send_all` out."""

    def __init__(self, core: StatelessCore, clock: Callable[[], float]) -> None:
        self._core = core
        self._clock = clock

    def message_received(self, data: bytes, source: Source) -> None:
        """Feed one message to the core and send what it returns."""
        send_all(self._core.message_received(data, source, now=self._clock()))

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        """Let the core answer an unframeable stream before the transport closes it."""
        send_all(self._core.stream_broken(data, error, source, now=self._clock()))


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: signals belong to the Application, not to uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


class Application:
    """Every long-lived part of one b2bua node, started and stopped together."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.ready = False
        self.store: Any = None
        self.udp: list[UdpTransport] = []
        self.tcp: list[TcpTransport] = []
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the store, bind SIP and HTTP listeners; OSError/StoreError on failure."""
        config = self.config
        loop = asyncio.get_running_loop()
        await self._open_store()
        core = StatelessCore(
            # Trunks send from a handful of addresses; skip re-parsing them per message.
            is_trusted=functools.lru_cache(maxsize=4096)(config.is_trusted),
            untrusted_action=config.sip.untrusted_action,
            max_message_size=config.sip.max_message_size,
        )
        dispatcher = Dispatcher(core, loop.time)
        ssl_context = server_ssl_context(config.sip)
        for address in config.sip.listen:
            if address.transport == "udp":
                udp = await start_udp(address.host, address.port, dispatcher)
                self.udp.append(udp)
                bound = udp.local_address
            else:
                tcp = await start_tcp(
                    address.host,
                    address.port,
                    dispatcher,
                    max_message_size=config.sip.max_message_size,
                    idle_timeout=config.sip.tcp_idle_timeout_s,
                    ssl=ssl_context if address.transport == "tls" else None,
                )
                self.tcp.append(tcp)
                bound = tcp.local_address
            log.info("listening", transport=address.transport, address=_format(*bound))
        await self._start_http()
        self.ready = True
        log.info("started", trunks=[t.name for t in config.trunks], store=self._store_kind())

    async def _open_store(self) -> None:
        try:
            from b2bua.store import open_store
        except ImportError:
            log.warning("store_unavailable", reason="b2bua.store has no open_store yet")
            return
        self.store = await open_store(self.config.store.url)

    def _store_kind(self) -> str:
        return self.config.store.url.partition(":")[0] if self.store is not None else "none"

    async def _start_http(self) -> None:
        listen = self.config.http.listen
        # Binding here, not inside uvicorn, makes a taken port an OSError we report
        # like any other, instead of uvicorn calling sys.exit from its task.
        family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((listen.host, listen.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        api = create_api(self.config, is_ready=lambda: self.ready, store=self.store)
        server_config = uvicorn.Config(
            api,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(DRAIN_TIMEOUT_S),
        )
        self._http = _EmbeddedUvicorn(server_config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve([sock]))
        host, port = sock.getsockname()[:2]
        log.info("listening", transport="http", address=_format(host, port))

    async def stop(self) -> None:
        """Drain and close everything that was started, in reverse order; never raises."""
        self.ready = False
        log.info("stopping")
        for udp in self.udp:
            await udp.close()
        for tcp in self.tcp:
            with contextlib.suppress(TimeoutError, OSError):
                await tcp.close(timeout=DRAIN_TIMEOUT_S)
        self.udp.clear()
        self.tcp.clear()
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            try:
                await asyncio.wait_for(self._http_task, DRAIN_TIMEOUT_S + 1)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("http_stop_timeout")
            except Exception:
                log.exception("http_stop_failed")
        if self.store is not None:
            try:
                await self.store.close()
            except Exception:
                log.exception("store_close_failed")
            self.store = None
        log.info("stopped")


async def serve(config: Config) -> int:
    """Run until SIGTERM/SIGINT; return 0 after a clean stop, 1 if startup failed."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    app = Application(config)
    try:
        await app.start()
    except Exception as error:
        # Configuration was validated already; what is left is the environment:
        # a taken port, an unreachable database.
        log.error("startup_failed", error=str(error), error_type=type(error).__name__)
        await app.stop()
        return 1
    await stop_requested.wait()
    await app.stop()
    return 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None  # the standard loop works, about 7x slower per datagram (DESIGN 7)
    return uvloop.new_event_loop


def run(config: Config) -> int:
    """Run the server in a fresh event loop (uvloop when installed)."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(config))

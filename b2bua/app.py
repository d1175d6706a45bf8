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
import gc
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from prometheus_client import generate_latest

from b2bua.api.app import create_api
from b2bua.api.provisioning import ApiContext, ApiSettings, install_provisioning_api
from b2bua.api.routes_policy import install_policy_api
from b2bua.app_engine import EngineCore, TimedDispatcher
from b2bua.app_routing import BindingRouter
from b2bua.app_sip import StatelessCore
from b2bua.app_workers import (
    METRICS_BUFFER,
    WorkerPlan,
    fork_workers,
    reap_children,
    signal_children,
)
from b2bua.bindings.service import BindingService
from b2bua.bindings.settings import BindingSettings
from b2bua.calls.dialog import LocalEndpoint
from b2bua.calls.engine import CallEngine
from b2bua.calls.events import CallEventSink
from b2bua.calls.routing import Trunk
from b2bua.calls.settings import EngineSettings
from b2bua.cdr.service import CdrService, default_node_id
from b2bua.cdr.settings import CdrSettings
from b2bua.config import Config, server_ssl_context
from b2bua.numbering import NumberingRules
from b2bua.observability.call_log import FanOutSink, LoggingCallSink
from b2bua.observability.logging import get_logger
from b2bua.observability.node import NodeObservability, Sources
from b2bua.observability.worker_metrics import merge_expositions
from b2bua.policy import AbusePolicy, PolicyRouter, PolicySettings
from b2bua.policy.service import PolicyService
from b2bua.sip.address import Address
from b2bua.sip.timers import TimerConfig
from b2bua.store import open_store
from b2bua.transport.base import Transport, send_all
from b2bua.transport.steering import Steering, owned_tokens
from b2bua.transport.tcp import TcpTransport, start_tcp
from b2bua.transport.udp import UdpTransport, start_udp

log = get_logger(__name__)

# How long stop() waits for queued TCP writes and in-flight HTTP requests.
DRAIN_TIMEOUT_S = 5.0
# Worker 0 is not ready while a child's last metrics (sent every second) are older.
WORKER_REPORT_TIMEOUT_S = 5.0


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Net tracked allocations that start a young collection (CPython's default is 700).
YOUNG_GC_THRESHOLD = 2_000


def _tune_runtime() -> None:
    """Keep the garbage collector and the GIL off the hot path.

    Everything built at start (the binding index can hold millions of objects)
    moves to the permanent generation, so full collections stop rescanning it.
    A young collection starts when allocations minus deallocations reach the
    threshold, and in a steady load the deaths of old calls' objects cancel most
    of the new calls' births: the count wanders, and under a threshold of 10,000
    the young generation grew to 15,000-40,000 objects. On a slow day of the
    2-core benchmark machine (b2bua_gc_pause_seconds buckets) at 200-300 calls/s,
    `YOUNG_GC_THRESHOLD` took the longest young pause from 100 ms to 25-50 ms and
    the longest middle one from 250 ms to 50-100 ms; with 5,000 calls held, from
    50 to 10 ms and from 100-250 to 25-50 ms. CPU per call did not change: each
    surviving object is scanned once per generation either way, and the hot path
    makes no reference cycles (steady-state collections free nothing).
    The store's database threads get the GIL back within 1 ms instead of 5 ms,
    which keeps group commits (and the API requests waiting on them) from
    queueing behind the event loop, and the event loop from waiting behind them.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, 10, 100)
    sys.setswitchinterval(0.001)


def _random_token() -> str:
    # Tags, branches and Call-IDs: unique and unguessable enough for SIP, and
    # cheap (they are drawn several times per call on the hot path).
    return f"{random.getrandbits(64):016x}"


def engine_settings(
    config: Config, endpoints: dict[str, LocalEndpoint], *, workers: int = 1
) -> EngineSettings:
    """The engine's plain settings from the configuration and the bound listeners.

    The limits are the server's: with several SIP workers each takes its share.
    """
    limits = config.limits

    def share(limit: int) -> int:
        return -(-limit // workers)  # rounded up: a limit of 1 stays 1, never 0

    per_trunk = share(limits.max_calls_per_trunk) or None
    trunks = tuple(
        Trunk(
            name=trunk.name,
            address=Address(
                trunk.address.transport.upper(), trunk.address.host, trunk.address.port
            ),
            priority=trunk.priority,
            inbound_networks=trunk.inbound_from,
            max_calls=per_trunk,
        )
        for trunk in config.trunks
    )
    timers = config.timers
    return EngineSettings(
        endpoints=endpoints,
        trunks=trunks,
        timers=TimerConfig(
            t1=timers.t1, t2=timers.t2, t4=timers.t4, timer_d_unreliable=timers.timer_d
        ),
        untrusted_action=config.sip.untrusted_action,
        max_calls=share(limits.max_calls),
        retry_after_s=config.calls.retry_after_s,
        ring_timeout_s=config.calls.ring_timeout_s,
        keepalive_interval_s=config.calls.keepalive_interval_s,
        max_transactions=share(limits.max_transactions),
        per_source_rps=share(limits.per_source_rps),
    )


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: signals belong to the Application, not to uvicorn."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install no signal handlers."""
        yield


class Application:
    """Every long-lived part of one b2bua node, started and stopped together."""

    def __init__(
        self,
        config: Config,
        plan: WorkerPlan | None = None,
        on_fatal: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        # Several SIP workers: this process's index and sockets (None: one process).
        self.plan = plan
        self._on_fatal = on_fatal
        self._steering: Steering | None = None
        self._worker_tasks: list[asyncio.Task[None]] = []
        self._watch_task: asyncio.Task[None] | None = None
        # Worker 0: each child's latest /metrics text and when it came.
        self._worker_metrics: dict[int, tuple[float, bytes]] = {}
        self.ready = False
        self.store: Any = None
        self.bindings: BindingService | None = None
        self.policy: PolicyService | None = None
        self.cdr: CdrService | None = None
        self.engine: CallEngine | None = None
        self.sinks: list[CallEventSink] = []
        self._dispatcher: TimedDispatcher | None = None
        self.udp: list[UdpTransport] = []
        self.tcp: list[TcpTransport] = []
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        # Metrics registry, loop-lag probe and readiness (store ping, listeners).
        self.observability = NodeObservability()

    async def start(self) -> None:
        """Open the store, bind SIP and HTTP listeners; OSError/StoreError on failure."""
        config = self.config
        loop = asyncio.get_running_loop()
        self.store = await open_store(config.store.url)
        self.observability.instrument_store(self.store)
        rules = NumberingRules.from_config(config.numbering)
        self.bindings = BindingService(
            self.store, rules, BindingSettings.from_config(config.bindings)
        )
        await self.bindings.start()
        abuse = AbusePolicy(PolicySettings.from_config(config.policy), rules)
        self.policy = PolicyService(self.store, abuse)
        await self.policy.start()
        # Records of calls a crash interrupted are closed before any new call starts.
        node_id = config.cdr.node_id or None
        if self.is_child:
            node_id = f"{node_id or default_node_id()}-w{self.worker_index}"
        self.cdr = CdrService(self.store, CdrSettings.from_config(config.cdr), node_id)
        await self.cdr.start()
        router = PolicyRouter(BindingRouter(self.bindings, rules), abuse)
        stateless = StatelessCore(
            # Trunks send from a handful of addresses; skip re-parsing them per message.
            is_trusted=functools.lru_cache(maxsize=4096)(config.is_trusted),
            untrusted_action=config.sip.untrusted_action,
            max_message_size=config.sip.max_message_size,
        )
        dispatcher = self._dispatcher = TimedDispatcher(
            loop, busy_limit=config.limits.overload_busy_percent / 100, t1_s=config.timers.t1
        )
        ssl_context = server_ssl_context(config.sip)
        transports: dict[str, Transport] = {}
        endpoints: dict[str, LocalEndpoint] = {}
        plan = self.plan
        if plan is not None:
            self._steering = Steering(plan.workers, dispatcher)
            self._steering.listeners = self.udp
            await self._steering.start()
        for address in config.sip.listen:
            transport: Transport
            if address.transport == "udp":
                udp = await start_udp(
                    address.host,
                    address.port,
                    dispatcher,
                    sock=plan.udp_sockets[len(self.udp)] if plan is not None else None,
                    steering=self._steering,
                    listener=len(self.udp),
                )
                self.udp.append(udp)
                transport = udp
            elif self.is_child:
                continue  # streams are served by worker 0 (see b2bua.app_workers)
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
                transport = tcp
            bound = transport.local_address
            name = address.transport.upper()
            transports.setdefault(name, transport)
            endpoints.setdefault(name, LocalEndpoint(name, config.sip.host, bound[1]))
            if not self.is_child:
                log.info("listening", transport=address.transport, address=_format(*bound))
        self.sinks = [self.cdr.sink, LoggingCallSink(log_numbers=config.logging.log_numbers)]
        self.sinks.append(self.observability.call_sink)
        self.engine = CallEngine(
            engine_settings(config, endpoints, workers=config.sip.workers),
            router,
            FanOutSink(self.sinks),
            random=owned_tokens(_random_token, self.worker_index, config.sip.workers),
            wall_clock=time.time,
        )
        dispatcher.core = EngineCore(
            self.engine,
            stateless,
            transports,
            drop_untrusted=config.sip.untrusted_action == "drop",
            max_message_size=config.sip.max_message_size,
        )
        if self._steering is not None:
            # Forwards from the sibling that received them are this worker's work too.
            dispatcher.core.queues.append(self._steering.queued_bytes)
        if self._steering is not None and config.sip.untrusted_action == "drop":
            # The dispatcher drops strangers unread; forwarding them first would let a
            # flood cost two workers instead of one.
            trunks = self.engine.trunks
            self._steering.keeps_local = lambda host: trunks.trunk_for_source(host) is None
        dispatcher.rearm()
        self.observability.start(
            Sources(
                engine=lambda: self.engine,
                bindings=lambda: self.bindings,
                listeners=lambda: [*self.udp, *self.tcp],
                # Record writer, webhooks, policy: found duck-typed among these.
                extras=lambda: [*vars(self).values(), *self.sinks],
            ),
            store=self.store,
        )
        if self.is_child:
            self._worker_tasks.append(loop.create_task(self._send_metrics()))
        else:
            await self._start_http()
            if plan is not None:
                self._receive_worker_metrics(loop)
                self._watch_task = loop.create_task(self._watch_children())
        _tune_runtime()
        self.ready = True
        log.info(
            "started",
            trunks=[t.name for t in config.trunks],
            store=self._store_kind(),
            worker=self.worker_index,
            workers=config.sip.workers,
        )

    @property
    def worker_index(self) -> int:
        """0 in the process that was started (and with one worker), 1.. in forked workers."""
        return self.plan.index if self.plan is not None else 0

    @property
    def is_child(self) -> bool:
        """A forked SIP worker: no HTTP, no streams, metrics sent to worker 0."""
        return self.worker_index > 0

    def _exposition(self) -> bytes:
        own = generate_latest(self.observability.registry)
        if not self._worker_metrics:
            return own
        texts = [own.decode(), *(text.decode() for _, text in self._worker_metrics.values())]
        return merge_expositions(texts).encode()

    def _workers_ready(self) -> bool:
        """Every child has reported within the last few seconds (it started and is not stuck)."""
        plan = self.plan
        if plan is None or self.is_child:
            return True
        now = asyncio.get_running_loop().time()
        reports = self._worker_metrics
        return all(
            index in reports and now - reports[index][0] < WORKER_REPORT_TIMEOUT_S
            for index in plan.children
        )

    async def _send_metrics(self) -> None:
        assert self.plan is not None and self.plan.metrics_out is not None
        out = self.plan.metrics_out
        while True:
            try:
                out.send(generate_latest(self.observability.registry))
            except OSError as error:
                log.warning("worker_metrics_not_sent", error=str(error))
            await asyncio.sleep(1.0)

    def _receive_worker_metrics(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.plan is not None
        for index, sock in self.plan.metrics_in.items():

            def receive(index: int = index, sock: socket.socket = sock) -> None:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    while True:
                        text = sock.recv(METRICS_BUFFER)
                        self._worker_metrics[index] = (loop.time(), text)

            loop.add_reader(sock.fileno(), receive)

    async def _watch_children(self) -> None:
        assert self.plan is not None
        while True:
            await asyncio.sleep(0.5)
            for index, code in reap_children(self.plan):
                self._worker_metrics.pop(index, None)
                log.error("worker_exited", worker=index, exit_code=code)
                self.ready = False
                self._on_fatal()

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
        api = create_api(
            self.config,
            is_ready=lambda: self.ready and self.observability.ready() and self._workers_ready(),
            store=self.store,
            registry=self.observability.registry,
            exposition=self._exposition,
        )
        if self.bindings is not None:
            context = ApiContext(
                service=self.bindings,
                store=self.store,
                operator_key=self.config.auth.operator_key,
                settings=ApiSettings(require_consent=self.config.bindings.require_consent),
            )
            install_provisioning_api(api, context)
            if self.policy is not None:
                install_policy_api(api, self.policy, context)
        server_config = uvicorn.Config(
            api,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(DRAIN_TIMEOUT_S),
            # Platforms call the API directly; no proxy headers to trust or parse,
            # and no Server/Date headers to format on every response.
            proxy_headers=False,
            server_header=False,
            date_header=False,
        )
        self._http = _EmbeddedUvicorn(server_config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve([sock]))
        host, port = sock.getsockname()[:2]
        log.info("listening", transport="http", address=_format(host, port))

    async def drain_calls(self) -> None:
        """Refuse new calls, let calls in progress finish, then end the rest."""
        engine, dispatcher = self.engine, self._dispatcher
        if engine is None or dispatcher is None or dispatcher.core is None:
            return
        engine.begin_drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.calls.drain_timeout_s
        if engine.active_calls:
            log.info("draining", active_calls=engine.active_calls)
        while engine.active_calls and loop.time() < deadline:
            await asyncio.sleep(0.1)
        if engine.active_calls:
            log.warning("ending_calls", active_calls=engine.active_calls)
            engine.end_all(now=loop.time())
            send_all(dispatcher.core.outputs())
            dispatcher.rearm()
            await asyncio.sleep(0.2)  # let the BYEs leave before the sockets close

    async def stop(self) -> None:
        """Drain and close everything that was started, in reverse order; never raises."""
        self.ready = False
        log.info("stopping", worker=self.worker_index)
        if self._watch_task is not None:
            # Children exit now on purpose; _wait_children reaps them.
            self._watch_task.cancel()
        if self.plan is not None:
            signal_children(self.plan, signal.SIGTERM)  # they drain beside this one
        try:
            await self.drain_calls()
        except Exception:
            log.exception("drain_failed")
        for task in self._worker_tasks:
            task.cancel()
        await self._wait_children()
        await self.observability.stop()
        if self._dispatcher is not None:
            self._dispatcher.close()
        if self._steering is not None:
            self._steering.close()
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
        if self.cdr is not None:
            try:
                await self.cdr.close()  # flushes the last records before the store closes
            except Exception:
                log.exception("cdr_close_failed")
            self.cdr = None
        if self.policy is not None:
            try:
                await self.policy.close()
            except Exception:
                log.exception("policy_close_failed")
            self.policy = None
        if self.bindings is not None:
            try:
                await self.bindings.close()
            except Exception:
                log.exception("bindings_close_failed")
            self.bindings = None
        if self.store is not None:
            try:
                await self.store.close()
            except Exception:
                log.exception("store_close_failed")
            self.store = None
        log.info("stopped", worker=self.worker_index)

    async def _wait_children(self) -> None:
        """Worker 0: wait for the children's own drain, then kill what is left."""
        plan = self.plan
        if plan is None or not plan.children:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.calls.drain_timeout_s + 2 * DRAIN_TIMEOUT_S
        while plan.children and loop.time() < deadline:
            for index, code in reap_children(plan):
                if code != 0:
                    log.error("worker_exited", worker=index, exit_code=code)
            await asyncio.sleep(0.05)
        if plan.children:
            log.warning("worker_stop_timeout", workers=sorted(plan.children))
            signal_children(plan, signal.SIGKILL)
            while plan.children:
                reap_children(plan)
                await asyncio.sleep(0.05)


async def serve(config: Config, plan: WorkerPlan | None = None) -> int:
    """Run until SIGTERM/SIGINT; 0 after a clean stop, 1 if startup or a worker failed."""
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    failed = False

    def fatal() -> None:
        nonlocal failed
        failed = True
        stop_requested.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    app = Application(config, plan, on_fatal=fatal)
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
    return 1 if failed else 0


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None  # the standard loop works, about 7x slower per datagram (DESIGN 7)
    return uvloop.new_event_loop


def run(config: Config) -> int:
    """Run the server in a fresh event loop (uvloop when installed)."""
    # Forked before any loop or thread exists; each process then runs its own loop.
    try:
        plan = fork_workers(config) if config.sip.workers > 1 else None
    except OSError as error:
        log.error("startup_failed", error=str(error), error_type=type(error).__name__)
        return 1
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        return runner.run(serve(config, plan))

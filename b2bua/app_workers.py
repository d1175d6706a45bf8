"""SIP worker processes (`sip.workers` above 1): forked, watched and stopped together.

One Python process handles calls on one core. With N workers, `run()` binds
the UDP listeners (SO_REUSEPORT) and one loopback inbox per worker, then forks
N-1 children before any event loop or thread exists. Worker 0 is the process
that was started: it keeps the HTTP API, TCP/TLS listeners and /metrics;
every worker handles the UDP calls it owns (`b2bua.transport.steering`) with
its own engine, store connection, binding index and call-record chain (node id
`<node>-w<index>`), like the nodes of a cluster sharing one store. Children
send worker 0 their metrics once a second, which /metrics adds up.

A child dies with the parent (PR_SET_PDEATHSIG); a child that dies on its own
stops the whole server with exit code 1, so the service manager restarts every
worker together rather than leave a share of the calls unanswered.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
from dataclasses import dataclass, field

from b2bua.config import Config
from b2bua.observability.logging import flush_logs, get_logger
from b2bua.transport.steering import WorkerSet, inbox_socket
from b2bua.transport.udp import bind_shared_udp

log = get_logger(__name__)

# A whole /metrics text in one datagram (tens of KiB with many trunks).
METRICS_BUFFER = 1024 * 1024
_PR_SET_PDEATHSIG = 1


@dataclass
class WorkerPlan:
    """What one process got from `fork_workers`: its index and its sockets."""

    workers: WorkerSet
    # The bound UDP listener sockets of this process, in `sip.listen` order.
    udp_sockets: list[socket.socket]
    # The port claims (see `claim_port`); held, never read.
    claims: list[socket.socket] = field(default_factory=list)
    # Worker 0 only: child index -> pid, and child index -> its metrics socket.
    children: dict[int, int] = field(default_factory=dict)
    metrics_in: dict[int, socket.socket] = field(default_factory=dict)
    # Children only: where this worker's metrics go.
    metrics_out: socket.socket | None = None

    @property
    def index(self) -> int:
        """0 for the process that was started, 1.. for the forked ones."""
        return self.workers.index


def _die_with_parent(parent: int) -> None:
    # Without this a SIGKILLed worker 0 would leave children holding the port.
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took effect: no one would signal us


def claim_port(host: str, port: int) -> socket.socket:
    """An abstract Unix socket named after `host:port`; OSError if another server holds it.

    SO_REUSEPORT lets any process of this user bind the port too, so a second
    server started by mistake would silently take a share of the calls. The
    name is held for as long as any worker of this server lives.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(f"\0b2bua-sip-udp-{host}-{port}")
    except OSError as error:
        sock.close()
        raise OSError(
            error.errno, f"udp:{host}:{port} is already served by another b2bua"
        ) from None
    return sock


def fork_workers(config: Config) -> WorkerPlan:
    """Bind the shared sockets and fork `sip.workers - 1` children; call before any loop.

    OSError when a listener cannot be bound or another b2bua holds its port.
    """
    count = config.sip.workers
    udp = [a for a in config.sip.listen if a.transport == "udp"]
    own = [bind_shared_udp(a.host, a.port) for a in udp]
    bound = [(a.host, sock.getsockname()[1]) for a, sock in zip(udp, own, strict=True)]
    # Kept open (and inherited by every child) until the last worker exits.
    claims = [claim_port(host, port) for host, port in bound]
    inboxes = [inbox_socket() for _ in range(count)]
    pairs = {
        index: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for index in range(1, count)
    }
    for reader, writer in pairs.values():
        writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, METRICS_BUFFER)
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, METRICS_BUFFER)
        reader.setblocking(False)
        writer.setblocking(False)
    children: dict[int, int] = {}
    parent = os.getpid()
    flush_logs()  # a line still waiting would be written once by every child
    for index in range(1, count):
        pid = os.fork()
        if pid == 0:
            _die_with_parent(parent)
            for sock in own:
                sock.close()
            mine = [bind_shared_udp(host, port) for host, port in bound]
            for other, (reader, writer) in pairs.items():
                reader.close()
                if other != index:
                    writer.close()
            return WorkerPlan(WorkerSet(index, inboxes), mine, claims, metrics_out=pairs[index][1])
        children[index] = pid
    for _, writer in pairs.values():
        writer.close()
    return WorkerPlan(
        WorkerSet(0, inboxes),
        own,
        claims,
        children=children,
        metrics_in={index: reader for index, (reader, _) in pairs.items()},
    )


def signal_children(plan: WorkerPlan, sig: signal.Signals) -> None:
    """Send `sig` to every child still running."""
    for pid in plan.children.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def reap_children(plan: WorkerPlan) -> list[tuple[int, int]]:
    """(index, exit status) of the children that have exited since the last call."""
    exited = []
    for index, pid in list(plan.children.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            del plan.children[index]
            exited.append((index, os.waitstatus_to_exitcode(status)))
    return exited

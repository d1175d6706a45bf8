"""Configuration: TOML file and environment to frozen dataclasses.

This is the only module that reads files or environment variables. Everything
is validated before any port is bound, and every problem is reported at once,
each naming its key (`trunks[0].address: expected ...`), the way Kamailio
refuses to start on a bad configuration instead of failing at the first call.

Each section is a frozen dataclass whose fields carry their own check in
`field(metadata=checked(...))`; the generic loader walks them, so a new section (`[cdr]`,
`[policy]`) is a dataclass plus one field on `Config`, nothing else.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import ssl
import tomllib
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from b2bua.config_checks import (
    LOG_LEVELS,
    HostPort,
    IPNetwork,
    SocketAddress,
    _array,
    _boolean,
    _choice,
    _host_port,
    _integer,
    _Invalid,
    _log_modules,
    _network,
    _positive_number,
    _regex,
    _socket_address,
    _store_url,
    _string,
    _type_name,
    checked,
)

OPERATOR_KEY_ENV = "B2BUA_OPERATOR_KEY"
SIP_TRANSPORTS = ("udp", "tcp", "tls")
TRUNK_TRANSPORTS = ("udp", "tcp")
BINDING_MODES = ("AXB", "AXYB", "GXB", "AXN")


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every problem, each naming its key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_DEFAULT_LISTEN = (SocketAddress("udp", "127.0.0.1", 5060), SocketAddress("tcp", "127.0.0.1", 5060))


@dataclass(frozen=True)
class SipConfig:
    """`[sip]`: listeners, advertised host, treatment of strangers, message limits."""

    listen: tuple[SocketAddress, ...] = field(
        default=_DEFAULT_LISTEN,
        metadata=checked(_array(_socket_address(SIP_TRANSPORTS), nonempty=True)),
    )
    host: str = field(default="127.0.0.1", metadata=checked(_string()))
    untrusted_action: Literal["reject", "drop"] = field(
        default="reject", metadata=checked(_choice(("reject", "drop")))
    )
    max_message_size: int = field(default=65536, metadata=checked(_integer(1024)))
    tcp_idle_timeout_s: float = field(default=300.0, metadata=checked(_positive_number))
    tls_certificate: str = field(default="", metadata=checked(_string(nonempty=False)))
    tls_private_key: str = field(default="", metadata=checked(_string(nonempty=False)))
    workers: int = field(default=1, metadata=checked(_integer(1)))


@dataclass(frozen=True)
class HttpConfig:
    """`[http]`: the provisioning API, health and metrics listener."""

    listen: HostPort = field(default=HostPort("127.0.0.1", 8080), metadata=checked(_host_port))


@dataclass(frozen=True)
class StoreConfig:
    """`[store]`: where bindings, numbers and call records live."""

    url: str = field(default="sqlite:///./b2bua.db", metadata=checked(_store_url))


@dataclass(frozen=True)
class AuthConfig:
    """`[auth]`: the operator key (env B2BUA_OPERATOR_KEY wins); "" disables operator access."""

    operator_key: str = field(default="", repr=False, metadata=checked(_string()))


@dataclass(frozen=True)
class TrunkConfig:
    """`[[trunks]]`: a carrier trunk, where calls go out and whom calls come in from."""

    name: str = field(metadata=checked(_string(), required=True))
    address: SocketAddress = field(
        metadata=checked(_socket_address(TRUNK_TRANSPORTS), required=True)
    )
    inbound_from: tuple[IPNetwork, ...] = field(default=(), metadata=checked(_array(_network)))
    priority: int = field(default=1, metadata=checked(_integer(0)))


@dataclass(frozen=True)
class TimersConfig:
    """`[timers]`: RFC 3261 T1, T2, T4 in seconds (section 17.1.1.1)."""

    t1: float = field(default=0.5, metadata=checked(_positive_number))
    t2: float = field(default=4.0, metadata=checked(_positive_number))
    t4: float = field(default=5.0, metadata=checked(_positive_number))
    # Timer D: how long an INVITE client transaction over UDP absorbs repeats of a
    # failure response ("at least 32 seconds", section 17.1.1.2).
    timer_d: float = field(default=32.0, metadata=checked(_positive_number))


@dataclass(frozen=True)
class CallsConfig:
    """`[calls]`: how long calls may ring, trunk keepalives, what 503s advise."""

    ring_timeout_s: float = field(default=120.0, metadata=checked(_positive_number))
    keepalive_interval_s: float = field(default=30.0, metadata=checked(_positive_number))
    retry_after_s: int = field(default=5, metadata=checked(_integer(1)))
    drain_timeout_s: float = field(default=30.0, metadata=checked(_positive_number))


@dataclass(frozen=True)
class LimitsConfig:
    """`[limits]`: overload protection; 0 means "no limit" where noted in the example file."""

    max_calls: int = field(default=10000, metadata=checked(_integer(1)))
    max_calls_per_trunk: int = field(default=0, metadata=checked(_integer(0)))
    max_transactions: int = field(default=300000, metadata=checked(_integer(1)))
    per_source_rps: int = field(default=0, metadata=checked(_integer(0)))
    overload_busy_percent: int = field(default=90, metadata=checked(_integer(0)))


@dataclass(frozen=True)
class NumberingConfig:
    """`[numbering]`: what a middle number and a real number look like (national form)."""

    middle_pattern: str = field(default=r"700\d{12}", metadata=checked(_regex))
    real_patterns: tuple[str, ...] = field(
        default=(r"1[3-9]\d{9}", r"0\d{9,11}"), metadata=checked(_array(_regex, nonempty=True))
    )
    country_code: str = field(default="86", metadata=checked(_string()))


@dataclass(frozen=True)
class BindingsConfig:
    """`[bindings]`: binding lifecycle rules."""

    cooling_period_s: int = field(default=120, metadata=checked(_integer(0)))
    require_order_id: bool = field(default=True, metadata=checked(_boolean))
    max_ttl_s: int = field(default=7776000, metadata=checked(_integer(1)))
    require_consent: bool = field(default=False, metadata=checked(_boolean))
    allowed_modes: tuple[str, ...] = field(
        default=BINDING_MODES, metadata=checked(_array(_choice(BINDING_MODES), nonempty=True))
    )


@dataclass(frozen=True)
class CdrConfig:
    """`[cdr]`: call records (b2bua.cdr.settings.CdrSettings documents each key)."""

    node_id: str = field(default="", metadata=checked(_string(nonempty=False)))
    batch_interval_s: float = field(default=0.1, metadata=checked(_positive_number))
    batch_max: int = field(default=1000, metadata=checked(_integer(1)))
    max_queue: int = field(default=200_000, metadata=checked(_integer(1)))
    retry_max_s: float = field(default=1.0, metadata=checked(_positive_number))
    heartbeat_interval_s: float = field(default=1.0, metadata=checked(_positive_number))
    stale_after_s: float = field(default=30.0, metadata=checked(_positive_number))
    stale_check_interval_s: float = field(default=15.0, metadata=checked(_positive_number))
    webhook_timeout_s: float = field(default=5.0, metadata=checked(_positive_number))
    webhook_max_attempts: int = field(default=12, metadata=checked(_integer(1)))
    webhook_backoff_s: float = field(default=2.0, metadata=checked(_positive_number))
    webhook_max_backoff_s: float = field(default=1800.0, metadata=checked(_positive_number))
    webhook_concurrency: int = field(default=16, metadata=checked(_integer(1)))
    webhook_poll_s: float = field(default=1.0, metadata=checked(_positive_number))
    retention_days: float = field(default=180.0, metadata=checked(_positive_number))
    purge_interval_s: float = field(default=3600.0, metadata=checked(_positive_number))
    purge_batch: int = field(default=5000, metadata=checked(_integer(1)))
    purge_pause_s: float = field(default=0.05, metadata=checked(_positive_number))


@dataclass(frozen=True)
class PolicyConfig:
    """`[policy]`: abuse controls (b2bua.policy.PolicySettings documents each rule)."""

    enabled: bool = field(default=True, metadata=checked(_boolean))
    rate_enabled: bool = field(default=True, metadata=checked(_boolean))
    rate_per_caller: int = field(default=30, metadata=checked(_integer(1)))
    rate_window_s: float = field(default=60.0, metadata=checked(_positive_number))
    binding_cap_enabled: bool = field(default=True, metadata=checked(_boolean))
    binding_attempt_cap: int = field(default=120, metadata=checked(_integer(1)))
    binding_window_s: float = field(default=3600.0, metadata=checked(_positive_number))
    blocklist_enabled: bool = field(default=True, metadata=checked(_boolean))
    fraud_enabled: bool = field(default=True, metadata=checked(_boolean))
    fraud_distinct_numbers: int = field(default=30, metadata=checked(_integer(1)))
    fraud_distinct_callers: int = field(default=10, metadata=checked(_integer(1)))
    fraud_window_s: float = field(default=600.0, metadata=checked(_positive_number))
    fraud_block_s: float = field(default=3600.0, metadata=checked(_positive_number))
    fraud_count_open_callers: bool = field(default=False, metadata=checked(_boolean))
    number_cache_size: int = field(default=100_000, metadata=checked(_integer(1)))


@dataclass(frozen=True)
class LoggingConfig:
    """`[logging]`: level, number masking, per-module levels."""

    level: str = field(default="info", metadata=checked(_choice(LOG_LEVELS)))
    log_numbers: bool = field(default=False, metadata=checked(_boolean))
    modules: Mapping[str, str] = field(
        default_factory=lambda: types.MappingProxyType({}), metadata=checked(_log_modules)
    )


_DEFAULT_TRUNK_ADDRESS = SocketAddress("udp", "127.0.0.1", 5070)
_DEFAULT_TRUSTED = (ipaddress.ip_network("127.0.0.1/32"),)
_DEFAULT_TRUNKS = (TrunkConfig("carrier-a", _DEFAULT_TRUNK_ADDRESS, _DEFAULT_TRUSTED, 1),)


@dataclass(frozen=True)
class Config:
    """The whole configuration; one field per TOML section."""

    sip: SipConfig = field(default_factory=SipConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    trunks: tuple[TrunkConfig, ...] = _DEFAULT_TRUNKS
    timers: TimersConfig = field(default_factory=TimersConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    numbering: NumberingConfig = field(default_factory=NumberingConfig)
    bindings: BindingsConfig = field(default_factory=BindingsConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    cdr: CdrConfig = field(default_factory=CdrConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def is_trusted(self, host: str) -> bool:
        """Whether a source address is inside some trunk's `inbound_from`."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for trunk in self.trunks for network in trunk.inbound_from)


# Sections that are a single table, by TOML name; adding a field to Config is enough.
_SECTIONS: dict[str, Callable[[], Any]] = {
    f.name: f.default_factory
    for f in dataclasses.fields(Config)
    if f.default_factory is not dataclasses.MISSING
}


def _load_table(cls: Any, table: Any, path: str, problems: list[str]) -> Any:
    """Build one section dataclass from its TOML table, collecting problems."""
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table, got {_type_name(table)}")
        return None
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    before = len(problems)
    for key in table:
        if key not in known:
            problems.append(f"{path}.{key}: unknown key")
    for name, spec in known.items():
        if name not in table:
            if spec.metadata.get("required"):
                problems.append(f"{path}.{name}: required")
            continue
        try:
            values[name] = spec.metadata["check"](table[name])
        except _Invalid as error:
            # Array elements add their index: `sip.listen[1]: ...`.
            problems.extend(f"{path}.{name}{suffix}: {text}" for suffix, text in error.items)
    return cls(**values) if len(problems) == before else None


def _cross_checks(config: Config, problems: list[str]) -> None:
    """Rules that relate several keys to each other."""
    for index, address in enumerate(config.sip.listen):
        # UDP and TCP may share a port; two listeners of one transport may not.
        if address in config.sip.listen[:index]:
            problems.append(f"sip.listen[{index}]: duplicate listener {address}")
    if any(a.transport == "tls" for a in config.sip.listen):
        for name in ("tls_certificate", "tls_private_key"):
            value = getattr(config.sip, name)
            if not value:
                problems.append(f"sip.{name}: required when sip.listen has a tls listener")
            elif not Path(value).is_file():
                problems.append(f"sip.{name}: no such file {value!r}")
        if not any(p.startswith("sip.tls_") for p in problems):
            try:
                server_ssl_context(config.sip)
            except (OSError, ssl.SSLError) as error:
                problems.append(f"sip.tls_certificate: cannot load certificate and key: {error}")
    timers = config.timers
    if timers.t2 < timers.t1:
        problems.append(f"timers.t2: must be at least timers.t1 ({timers.t1}), got {timers.t2}")
    names: dict[str, int] = {}
    for index, trunk in enumerate(config.trunks):
        if trunk.name in names:
            problems.append(
                f"trunks[{index}].name: duplicate of trunks[{names[trunk.name]}].name "
                f"{trunk.name!r}"
            )
        names.setdefault(trunk.name, index)
    if config.sip.workers > 1:
        # Steering by Call-ID works on datagrams; a stream belongs to the worker
        # that holds the connection, which may not own the call.
        for index, trunk in enumerate(config.trunks):
            if trunk.address.transport != "udp":
                problems.append(
                    f"trunks[{index}].address: must be udp when sip.workers is above 1, "
                    f"got {trunk.address.transport}"
                )
        if not any(a.transport == "udp" for a in config.sip.listen):
            problems.append("sip.listen: needs a udp listener when sip.workers is above 1")


def parse_config(data: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Config:
    """Validate a decoded TOML document (plus environment) into a Config.

    Absent sections and keys take their defaults; an absent `[[trunks]]` keeps
    the default trunk. Raises ConfigError listing every problem found.
    """
    env = os.environ if env is None else env
    problems: list[str] = []
    sections: dict[str, Any] = {}
    for key, value in data.items():
        if key == "trunks":
            continue
        if key not in _SECTIONS:
            problems.append(f"{key}: unknown section")
            continue
        sections[key] = _load_table(_SECTIONS[key], value, key, problems)
    if "trunks" in data:
        raw = data["trunks"]
        if not isinstance(raw, list):
            problems.append(f"trunks: expected [[trunks]] tables, got {_type_name(raw)}")
        else:
            loaded = (
                _load_table(TrunkConfig, t, f"trunks[{i}]", problems) for i, t in enumerate(raw)
            )
            sections["trunks"] = tuple(trunk for trunk in loaded if trunk is not None)
    operator_key = env.get(OPERATOR_KEY_ENV)
    if operator_key is not None:
        if not operator_key.strip():
            problems.append(f"{OPERATOR_KEY_ENV} (auth.operator_key): must not be empty")
        else:
            sections["auth"] = AuthConfig(operator_key=operator_key)
    # Sections that failed fall back to defaults so the cross-key rules still
    # run and every problem is reported in one go.
    config = Config(**{name: value for name, value in sections.items() if value is not None})
    _cross_checks(config, problems)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file (no path: embedded defaults); ConfigError lists problems."""
    if path is None:
        return parse_config({}, env)
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: invalid TOML: {error}"]) from None
    return parse_config(data, env)


def server_ssl_context(sip: SipConfig) -> ssl.SSLContext | None:
    """The TLS context for `tls:` listeners (reads the certificate files), or None."""
    if not any(address.transport == "tls" for address in sip.listen):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(sip.tls_certificate, sip.tls_private_key)
    return context

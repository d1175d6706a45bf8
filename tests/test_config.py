"""Configuration loading: defaults, validation by key, all problems at once, env."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from b2bua.config import (
    OPERATOR_KEY_ENV,
    AuthConfig,
    Config,
    ConfigError,
    HostPort,
    SocketAddress,
    load_config,
    parse_config,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "b2bua.toml"


def problems_of(data: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, env or {})
    return caught.value.problems


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "b2bua.toml"
    path.write_text(text)
    return path


def test_embedded_defaults_match_design() -> None:
    config = load_config(None, env={})
    assert config == Config()
    assert config.sip.listen == (
        SocketAddress("udp", "127.0.0.1", 5060),
        SocketAddress("tcp", "127.0.0.1", 5060),
    )
    assert config.http.listen == HostPort("127.0.0.1", 8080)
    assert config.store.url == "sqlite:///./b2bua.db"
    (trunk,) = config.trunks
    assert trunk.name == "carrier-a"
    assert trunk.address == SocketAddress("udp", "127.0.0.1", 5070)
    assert trunk.inbound_from == (ipaddress.ip_network("127.0.0.1/32"),)
    assert config.sip.untrusted_action == "reject"
    assert config.sip.max_message_size == 65536
    assert (config.timers.t1, config.timers.t2, config.timers.t4) == (0.5, 4.0, 5.0)
    assert config.limits.max_calls == 10000
    assert config.numbering.middle_pattern == r"700\d{12}"
    assert config.bindings.cooling_period_s == 120
    assert config.bindings.allowed_modes == ("AXB", "AXYB", "GXB", "AXN")
    assert config.logging.level == "info"
    assert config.auth.operator_key == ""


def test_example_file_loads_and_differs_from_defaults_only_deliberately() -> None:
    example = load_config(EXAMPLE, env={})
    # The example sets an operator key; everything else documents the defaults.
    assert example == dataclasses.replace(Config(), auth=AuthConfig(operator_key="change-me"))


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    config = Config()
    for section in dataclasses.fields(config):
        value = getattr(config, section.name)
        if section.name == "trunks":
            value = value[0]
        for key in dataclasses.fields(value):
            assert f"\n{key.name} = " in text, f"{section.name}.{key.name} missing from example"


def test_valid_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[sip]
listen = ["udp:0.0.0.0:5080", "tcp:[::1]:5080"]
host = "sbc.example.com"
untrusted_action = "drop"

[http]
listen = "[::]:9000"

[store]
url = "postgresql://localhost/test"

[[trunks]]
name = "a"
address = "tcp:10.0.0.1:5060"
inbound_from = ["10.0.0.0/24", "2001:db8::/32"]
priority = 2

[[trunks]]
name = "b"
address = "udp:10.0.1.1:5060"

[timers]
t1 = 0.1
t2 = 1

[logging]
level = "debug"
modules = { "b2bua.sip" = "warning" }
""",
    )
    config = load_config(path, env={})
    assert config.sip.listen[1] == SocketAddress("tcp", "::1", 5080)
    assert config.sip.untrusted_action == "drop"
    assert config.http.listen == HostPort("::", 9000)
    assert [t.name for t in config.trunks] == ["a", "b"]
    assert config.trunks[1].inbound_from == ()
    assert config.trunks[1].priority == 1
    assert config.timers.t2 == 1.0 and isinstance(config.timers.t2, float)
    assert dict(config.logging.modules) == {"b2bua.sip": "warning"}
    assert config.is_trusted("10.0.0.7")
    assert config.is_trusted("2001:db8::1")
    assert not config.is_trusted("10.0.1.1")
    assert not config.is_trusted("not-an-ip")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sip": {"nope": 1}}, "sip.nope: unknown key"),
        ({"nope": {}}, "nope: unknown section"),
        ({"sip": []}, "sip: expected a table, got array"),
        (
            {"sip": {"listen": ["udp:127.0.0.1:5060", "sctp:x:1"]}},
            'sip.listen[1]: expected "udp:host:port" or "tcp:host:port" or'
            " \"tls:host:port\", got 'sctp:x:1'",
        ),
        ({"sip": {"listen": []}}, "sip.listen: must not be empty"),
        ({"sip": {"listen": "udp:a:1"}}, "sip.listen: expected an array, got string"),
        (
            {"sip": {"listen": ["udp:a:1", "udp:a:1"]}},
            "sip.listen[1]: duplicate listener udp:a:1",
        ),
        ({"sip": {"listen": ["udp:a:70000"]}}, "sip.listen[0]: expected"),
        ({"sip": {"untrusted_action": "ignore"}}, "sip.untrusted_action: expected one of"),
        ({"sip": {"max_message_size": "big"}}, "sip.max_message_size: expected an integer"),
        ({"sip": {"max_message_size": True}}, "sip.max_message_size: expected an integer"),
        ({"sip": {"max_message_size": 10}}, "sip.max_message_size: must be at least 1024"),
        ({"sip": {"tcp_idle_timeout_s": 0}}, "sip.tcp_idle_timeout_s: must be greater than 0"),
        ({"sip": {"host": ""}}, "sip.host: must not be empty"),
        ({"sip": {"workers": 0}}, "sip.workers: must be at least 1"),
        (
            {"sip": {"workers": 2}, "trunks": [{"name": "a", "address": "tcp:a:1"}]},
            "trunks[0].address: must be udp when sip.workers is above 1, got tcp",
        ),
        (
            {"sip": {"workers": 2, "listen": ["tcp:127.0.0.1:5060"]}},
            "sip.listen: needs a udp listener when sip.workers is above 1",
        ),
        (
            {"sip": {"listen": ["tls:127.0.0.1:5061"]}},
            "sip.tls_certificate: required when sip.listen has a tls listener",
        ),
        (
            {
                "sip": {
                    "listen": ["tls:127.0.0.1:5061"],
                    "tls_certificate": "/nonexistent.pem",
                    "tls_private_key": "/nonexistent.key",
                }
            },
            "sip.tls_certificate: no such file '/nonexistent.pem'",
        ),
        ({"http": {"listen": "8080"}}, "http.listen: expected \"host:port\", got '8080'"),
        ({"store": {"url": "mysql://x"}}, 'store.url: expected "sqlite:///path"'),
        ({"auth": {"operator_key": ""}}, "auth.operator_key: must not be empty"),
        ({"trunks": {"name": "a"}}, "trunks: expected [[trunks]] tables, got table"),
        ({"trunks": [{"address": "udp:a:1"}]}, "trunks[0].name: required"),
        ({"trunks": [{"name": "a"}]}, "trunks[0].address: required"),
        (
            {"trunks": [{"name": "a", "address": "tls:a:1"}]},
            'trunks[0].address: expected "udp:host:port" or "tcp:host:port", got \'tls:a:1\'',
        ),
        (
            {"trunks": [{"name": "a", "address": "udp:a:1", "inbound_from": ["10.0.0.1/8"]}]},
            "trunks[0].inbound_from[0]: expected a CIDR",
        ),
        (
            {"trunks": [{"name": "a", "address": "udp:a:1", "colour": "red"}]},
            "trunks[0].colour: unknown key",
        ),
        (
            {"trunks": [{"name": "a", "address": "udp:a:1"}, {"name": "a", "address": "udp:b:1"}]},
            "trunks[1].name: duplicate of trunks[0].name 'a'",
        ),
        ({"timers": {"t1": -1}}, "timers.t1: must be greater than 0"),
        ({"timers": {"t1": 5.0}}, "timers.t2: must be at least timers.t1"),
        ({"limits": {"max_calls": 0}}, "limits.max_calls: must be at least 1"),
        ({"limits": {"per_source_rps": -1}}, "limits.per_source_rps: must be at least 0"),
        ({"numbering": {"middle_pattern": "700(\\d"}}, "numbering.middle_pattern: invalid"),
        ({"numbering": {"real_patterns": []}}, "numbering.real_patterns: must not be empty"),
        ({"numbering": {"real_patterns": ["1", 2]}}, "numbering.real_patterns[1]: expected"),
        ({"bindings": {"require_order_id": "yes"}}, "bindings.require_order_id: expected true"),
        ({"bindings": {"allowed_modes": ["AXB", "XYZ"]}}, "bindings.allowed_modes[1]:"),
        ({"logging": {"level": "loud"}}, "logging.level: expected one of"),
        ({"logging": {"modules": {"b2bua.sip": "loud"}}}, "logging.modules['b2bua.sip']:"),
    ],
)
def test_each_error_names_its_key(data: dict[str, object], expected: str) -> None:
    problems = problems_of(data)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_several_workers_with_udp_trunks_and_a_udp_listener() -> None:
    config = parse_config(
        {
            "sip": {"workers": 2, "listen": ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"]},
            "trunks": [
                {"name": "a", "address": "udp:10.0.0.1:5060"},
                {"name": "b", "address": "udp:10.0.1.1:5060"},
            ],
        },
        {},
    )
    assert config.sip.workers == 2
    assert Config().sip.workers == 1


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(
        {
            "sip": {"listen": ["bad"], "typo": 1},
            "timers": {"t1": "fast"},
            "trunks": [{"name": "", "address": "x"}, {"priority": -1}],
            "extra": {},
        },
        env={OPERATOR_KEY_ENV: " "},
    )
    keys = sorted(problem.split(":")[0] for problem in problems)
    assert keys == [
        "B2BUA_OPERATOR_KEY (auth.operator_key)",
        "extra",
        "sip.listen[0]",
        "sip.typo",
        "timers.t1",
        "trunks[0].address",
        "trunks[0].name",
        "trunks[1].address",
        "trunks[1].name",
        "trunks[1].priority",
    ]


def test_env_provides_and_overrides_operator_key(tmp_path: Path) -> None:
    assert load_config(None, env={OPERATOR_KEY_ENV: "from-env"}).auth.operator_key == "from-env"
    path = write(tmp_path, '[auth]\noperator_key = "from-file"\n')
    assert load_config(path, env={}).auth.operator_key == "from-file"
    assert load_config(path, env={OPERATOR_KEY_ENV: "env-wins"}).auth.operator_key == "env-wins"


def test_operator_key_is_not_in_repr() -> None:
    config = load_config(None, env={OPERATOR_KEY_ENV: "secret-key"})
    assert "secret-key" not in repr(config)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.toml", env={})
    assert caught.value.problems[0].endswith("missing.toml: cannot read: No such file or directory")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, "[sip\n"), env={})
    assert "invalid TOML" in caught.value.problems[0]


def test_tls_listener_loads_certificate(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    problems = problems_of(
        {
            "sip": {
                "listen": ["tls:127.0.0.1:5061"],
                "tls_certificate": str(cert),
                "tls_private_key": str(cert),
            }
        }
    )
    assert problems[0].startswith("sip.tls_certificate: cannot load certificate and key")


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.sip = config.sip  # type: ignore[misc]


def test_each_bad_array_element_is_its_own_problem() -> None:
    problems = problems_of({"sip": {"listen": ["a", "udp:127.0.0.1:5060", 7]}})
    assert [p.split(":")[0] for p in problems] == ["sip.listen[0]", "sip.listen[2]"]
    assert problems[1] == (
        'sip.listen[2]: expected "udp:host:port" or "tcp:host:port" or "tls:host:port", got integer'
    )

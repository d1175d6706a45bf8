"""The stream transport with TLS: same framing, a `tls` name, certificates from config."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from tooling import require_tool

from b2bua.config import ConfigError, load_config, server_ssl_context
from b2bua.sip import ParseError
from b2bua.transport.base import Source
from b2bua.transport.tcp import start_tcp

pytestmark = pytest.mark.timeout(20)


class EchoSink:
    def message_received(self, data: bytes, source: Source) -> None:
        source.transport.send(data, source.address)

    def stream_broken(self, data: bytes, error: ParseError, source: Source) -> None:
        pass


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    openssl = require_tool("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=15,
    )  # fmt: skip
    return cert, key


async def test_tls_round_trip(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = certificate
    path = tmp_path / "tls.toml"
    path.write_text(
        f'[sip]\nlisten = ["tls:127.0.0.1:5061"]\n'
        f'tls_certificate = "{cert}"\ntls_private_key = "{key}"\n'
    )
    config = load_config(path, env={})
    context = server_ssl_context(config.sip)
    assert context is not None
    transport = await start_tcp(
        "127.0.0.1", 0, EchoSink(), max_message_size=4096, idle_timeout=5, ssl=context
    )
    assert transport.name == "tls" and transport.reliable
    client_context = ssl.create_default_context(cafile=str(cert))
    client_context.check_hostname = False
    reader, writer = await asyncio.open_connection(*transport.local_address, ssl=client_context)
    message = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\n\r\nhi"
    writer.write(message)
    assert await asyncio.wait_for(reader.readexactly(len(message)), 5) == message
    writer.close()
    await transport.close()


def test_mismatched_key_is_a_config_error(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    cert, _ = certificate
    path = tmp_path / "tls.toml"
    path.write_text(
        f'[sip]\nlisten = ["tls:127.0.0.1:5061"]\n'
        f'tls_certificate = "{cert}"\ntls_private_key = "{cert}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.problems[0].startswith("sip.tls_certificate: cannot load")

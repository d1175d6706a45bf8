"""Property-based conformance: schemathesis drives the live API from ``/openapi.json``.

Every operation is exercised with generated valid and invalid input, once with the
operator key and once with a tenant key; no answer may be a 5xx, use an
undocumented status, or break its documented schema. Bounded: at most
``MAX_EXAMPLES`` cases per operation and key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

from .server import LiveServer, live_server  # noqa: E402

MAX_EXAMPLES = 30
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    path: Path = tmp_path_factory.mktemp("schemathesis") / "api.db"
    with live_server(path) as live:
        yield live


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json")


_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("key", ["operator", "tenant"])
def test_every_operation_conforms(
    api_schema: Any, server: LiveServer, key: str, mode: GenerationMode
) -> None:
    # schemathesis' own pytest plugin does not load under pytest 9, so each operation
    # gets a plain hypothesis test here; the failures of all operations are reported.
    secret = server.operator_key if key == "operator" else server.tenant_key
    headers = {"Authorization": f"Bearer {secret}"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @_SETTINGS
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call_and_validate(
                base_url=server.url, headers=headers, checks=CHECKS, timeout=10
            )
            statuses[response.status_code] += 1

        try:
            check()
        except Exception as exc:  # every operation's first failure, not just the first one
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 13
    assert not failures, "\n\n".join(failures)
    # The run really reached the handlers: some requests succeeded, some were refused.
    assert sum(statuses.values()) >= operations * 5, statuses
    assert any(200 <= s < 300 for s in statuses) and 422 in statuses, statuses

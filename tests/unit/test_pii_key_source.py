"""Where the PII key comes from: the environment variable, else a Databricks secret (serverless
jobs have no environment variables), else a one-line error naming the fix."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from salesopt import dims
from salesopt.config import load_settings
from salesopt.errors import ConfigError, SetupError


class _Secrets:
    def __init__(self, values: dict[tuple[str, str], str]) -> None:
        self.values = values
        self.calls: list[tuple[str, str]] = []

    def get(self, scope: str, key: str) -> str:
        self.calls.append((scope, key))
        if (scope, key) not in self.values:
            raise PermissionError(f"no READ on {scope}")  # as the SDK's errors, by name
        return self.values[(scope, key)]


@pytest.fixture(autouse=True)
def _fresh_reads() -> Iterator[None]:
    dims._secret.cache_clear()
    yield
    dims._secret.cache_clear()


def _runtime(monkeypatch: pytest.MonkeyPatch, secrets: _Secrets) -> None:
    """Stands in for the Databricks runtime: its version variable and `dbutils`."""
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "client.5.1")
    module = types.ModuleType("databricks.sdk.runtime")
    module.dbutils = types.SimpleNamespace(secrets=secrets)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "databricks.sdk.runtime", module)


def _settings(**clean: object):  # type: ignore[no-untyped-def]
    return load_settings(overrides={f"clean.{k}": v for k, v in clean.items()}, environ={})


def test_environment_variable_wins_over_the_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = _Secrets({("salesopt", "pii_key"): "from-secret"})
    _runtime(monkeypatch, secrets)
    monkeypatch.setenv("SALESOPT_PII_KEY", "from-env")
    assert dims.pii_key(_settings(pii_key_secret="salesopt/pii_key")) == "from-env"
    assert secrets.calls == []


def test_secret_read_when_the_variable_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = _Secrets({("salesopt", "pii_key"): "from-secret"})
    _runtime(monkeypatch, secrets)
    monkeypatch.delenv("SALESOPT_PII_KEY", raising=False)
    settings = _settings(pii_key_secret="salesopt/pii_key")
    assert dims.pii_key(settings) == "from-secret"
    assert dims.pii_key(settings) == "from-secret"  # the pre-flight check and silver
    assert secrets.calls == [("salesopt", "pii_key")]  # one read per process


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "cannot read the PII key from secret salesopt/pii_key (PermissionError): create it"),
        ({("salesopt", "pii_key"): ""}, "the PII key secret salesopt/pii_key is empty"),
    ],
)
def test_unreadable_or_empty_secret_is_one_line_with_the_fix(
    values: dict[tuple[str, str], str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _runtime(monkeypatch, _Secrets(values))
    monkeypatch.delenv("SALESOPT_PII_KEY", raising=False)
    with pytest.raises(SetupError) as err:
        dims.pii_key(_settings(pii_key_secret="salesopt/pii_key"))
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_secret_outside_databricks_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """databricks-sdk may be installed anywhere (MLflow brings it): the runtime decides."""
    secrets = _Secrets({("salesopt", "pii_key"): "from-secret"})
    _runtime(monkeypatch, secrets)
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION")
    monkeypatch.delenv("SALESOPT_PII_KEY", raising=False)
    with pytest.raises(SetupError, match="read only on Databricks: elsewhere set the PII key's"):
        dims.pii_key(_settings(pii_key_secret="salesopt/pii_key"))
    assert secrets.calls == []


def test_secret_name_is_scope_slash_key() -> None:
    with pytest.raises(ConfigError, match="pii_key_secret"):
        _settings(pii_key_secret="just-a-key")

"""Notebook parameters: a bad `as_of` is one clear error before any settings or Spark work."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from salesopt import notebook

CONF = str(Path(__file__).resolve().parents[2] / "conf" / "test.yaml")


def test_as_of_is_parsed_from_the_parameter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SALESOPT_NB_AS_OF", " 2025-06-30 ")  # a widget's stray blanks
    run = notebook.setup({"conf": CONF}, frame_globals={})
    assert run.as_of == date(2025, 6, 30)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30/06/2025", "notebook parameter as_of: not a date YYYY-MM-DD: '30/06/2025'"),
        ("20250630", "notebook parameter as_of: not a date YYYY-MM-DD: '20250630'"),
        ("2025-06-31", "'2025-06-31' (day is out of range for month)"),
        ("", "notebook parameter as_of is required"),
    ],
)
def test_bad_as_of_fails_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.delenv("SALESOPT_NB_AS_OF", raising=False)
    with pytest.raises(ValueError) as failure:
        notebook.setup({"conf": CONF, "as_of": value}, frame_globals={})
    assert message in str(failure.value)

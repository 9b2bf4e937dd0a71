"""The quarantine reason codes silver counts are the ones the contract documents."""

from __future__ import annotations

import re

from salesopt import clean


def test_reason_codes_are_the_documented_table() -> None:
    assert clean.__doc__ is not None
    documented = re.findall(r"^\| ([a-z_]+(?::<name>)?) \|", clean.__doc__, flags=re.M)
    assert documented[0] == "reason"  # the table's header
    assert tuple(documented[1:]) == (*clean.REASON_CODES, "rule:<name>")

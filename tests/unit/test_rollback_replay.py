"""`rollback.in_effect`: which commits a table's current version holds, from its history."""

from __future__ import annotations

import json

import pytest

from salesopt.rollback import RollbackRefused, in_effect


def _tag(run: str, **extra: str) -> str:
    return json.dumps({"run_id": run, **extra})


def _runs(history) -> list[str | None]:
    live, _ = in_effect(history)
    return [c.run_id for c in live]


def test_a_restore_puts_back_what_was_in_effect_at_its_version() -> None:
    history = [
        (0, "WRITE", _tag("a"), {}),
        (1, "WRITE", _tag("b"), {}),
        (2, "RESTORE", _tag("rb", rollback_of="b"), {"version": "0"}),
        (3, "MERGE", _tag("c"), {}),
        (4, "OPTIMIZE", None, {}),
        (5, "RESTORE", _tag("rc", rollback_of="c"), {"version": "2"}),  # a restore of a restore
        (6, "WRITE", _tag("b"), {}),  # b rerun under its id
    ]
    assert _runs(history) == ["a", "b"]
    assert in_effect(history)[0][1].version == 6  # the rerun, not the undone first attempt
    assert in_effect(history)[1] == {"a", "b", "rb", "c", "rc"}


def test_a_rollback_that_emptied_a_created_table_leaves_nothing_and_hand_writes_count() -> None:
    history = [
        (0, "WRITE", _tag("a"), {}),
        (1, "DELETE", _tag("ra", rollback_of="a"), {}),
        (2, "WRITE", None, {}),  # by hand
    ]
    live, _ = in_effect(history)
    assert [(c.run_id, c.writer) for c in live] == [
        (None, "version 2 (WRITE, written outside salesopt)")
    ]


@pytest.mark.parametrize("target", ["null", None, "7"])
def test_a_restore_whose_target_cannot_be_told_is_refused(target) -> None:
    history = [(0, "WRITE", _tag("a"), {}), (1, "RESTORE", None, {"version": target})]
    with pytest.raises(
        RollbackRefused, match=r"version 1 is a RESTORE to .*restore this table by hand"
    ):
        in_effect(history)

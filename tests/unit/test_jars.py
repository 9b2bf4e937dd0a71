"""The pinned jar list of `salesopt setup` and its download (from a repository folder served as
file:// URLs: no network), against the jars `make setup` resolved from jars/pom.xml."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from salesopt.errors import SetupError
from salesopt.jars import DELTA_JARS, fetch_delta_jars
from salesopt.session import find_delta_jars, jar_locations

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_JARS = ROOT / ".jars"


def test_the_pinned_list_is_what_maven_resolved_from_the_pom() -> None:
    resolved = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in CHECKOUT_JARS.glob("*.jar")
    }
    pinned = {path.rsplit("/", 1)[1]: sha for path, sha in DELTA_JARS}
    assert pinned == resolved


def _repository(root: Path) -> str:
    """A Maven-layout folder holding the checkout's jars; its file:// URL."""
    for path, _sha in DELTA_JARS:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHECKOUT_JARS / target.name, target)
    return root.as_uri()


def test_setup_downloads_checks_and_keeps(tmp_path: Path) -> None:
    repo = _repository(tmp_path / "repo")
    dest = tmp_path / "cache" / "jars"
    first = fetch_delta_jars(dest, repository=repo)
    assert sorted(first["fetched"]) == sorted(p.rsplit("/", 1)[1] for p, _ in DELTA_JARS)
    assert find_delta_jars(locations=[str(tmp_path / "none"), str(dest)])[0].parent == dest
    (dest / "shims-0.9.25.jar").write_bytes(b"truncated")  # a damaged file is fetched again
    again = fetch_delta_jars(dest, repository=repo)
    assert again["fetched"] == ["shims-0.9.25.jar"] and len(again["kept"]) == len(DELTA_JARS) - 1


def test_a_changed_file_in_the_repository_is_refused(tmp_path: Path) -> None:
    repo_root = tmp_path / "repo"
    repo = _repository(repo_root)
    (repo_root / DELTA_JARS[0][0]).write_bytes(b"not the delta jar")
    dest = tmp_path / "jars"
    with pytest.raises(SetupError, match="checksum mismatch, not installed"):
        fetch_delta_jars(dest, repository=repo)
    assert list(dest.iterdir()) == []  # nothing half-installed, no staging left behind


def test_a_failed_download_installs_none_of_the_set(tmp_path: Path) -> None:
    repo_root = tmp_path / "repo"
    repo = _repository(repo_root)
    (repo_root / DELTA_JARS[-1][0]).unlink()  # the last file of the set is missing
    dest = tmp_path / "jars"
    with pytest.raises(SetupError, match="could not download"):
        fetch_delta_jars(dest, repository=repo)
    assert list(dest.iterdir()) == []  # not even delta-spark, which a session would take


def test_an_unreachable_repository_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match=r"could not download .* check the network or proxy"):
        fetch_delta_jars(tmp_path / "jars", repository=(tmp_path / "absent").as_uri())


def test_sessions_look_in_the_setup_folder_last(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/opt/cache")
    assert jar_locations()[-1] == "/opt/cache/salesopt/jars"

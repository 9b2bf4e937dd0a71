"""The pinned Delta Lake jars of the embedded session, and `salesopt setup`, which fetches them.

A checkout gets them with `make setup` (Maven resolves jars/pom.xml into ./.jars). An installed
wheel has no checkout: `salesopt setup` downloads the same files from Maven Central once into the
user's cache (`~/.cache/salesopt/jars`, or $XDG_CACHE_HOME), checks each file's SHA-256 against
the list below, and the embedded session finds them there. The list is the resolution of
jars/pom.xml (tests/unit/test_jars.py keeps the two in step). After set-up no session start
touches the network.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
from pathlib import Path

from salesopt.errors import SetupError

log = logging.getLogger(__name__)

MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
# (path under a Maven repository, SHA-256 of the file)
DELTA_JARS: tuple[tuple[str, str], ...] = (
    ("io/delta/delta-spark_4.1_2.13/4.3.1/delta-spark_4.1_2.13-4.3.1.jar",
     "ebf35a4383f0a653c3ee3c7882c0edcac2f846be31ac61af4b96ccfaaf36c171"),
    ("io/delta/delta-storage/4.3.1/delta-storage-4.3.1.jar",
     "577c12c7e371be4c041714fb48e88ad86e3c3512beea2bdaffbe7a4debf79718"),
    ("io/delta/delta-kernel-api/4.3.1/delta-kernel-api-4.3.1.jar",
     "b081b818d6f5686c7d6406588af72c9f8baf6765a41ada8197364aef90a260e8"),
    ("io/delta/delta-kernel-defaults/4.3.1/delta-kernel-defaults-4.3.1.jar",
     "27471cca7dd7a36289af2c8d52d2babb37e9e5a13cdaaea76730120f4c72e62f"),
    ("io/delta/delta-kernel-unitycatalog/4.3.1/delta-kernel-unitycatalog-4.3.1.jar",
     "a288342b7e53da34a608a1a227c8109aa4681fcb582da499ed19347f2193362b"),
    ("io/unitycatalog/unitycatalog-client/0.5.0/unitycatalog-client-0.5.0.jar",
     "9de6812122b411e74ee06c831dac5ccd5f87d69002c29170a37a8bce5e503615"),
    ("io/unitycatalog/unitycatalog-hadoop/0.5.0/unitycatalog-hadoop-0.5.0.jar",
     "baca7b2928afe2a1b1789b423ab817d5d4165218999a10ebeab4a8712683beb5"),
    ("commons-logging/commons-logging/1.3.0/commons-logging-1.3.0.jar",
     "66d3c980470b99b0c511dad3dfc0ae7b265ec1fb144e96bc0253a8a175fd34d9"),
    ("com/fasterxml/jackson/datatype/jackson-datatype-jdk8/2.13.5/jackson-datatype-jdk8-2.13.5.jar",
     "e58761751fea8a00dc626aae1c5f1be38c5cfd487aeb333d933a4ab5f5a73c55"),
    ("javax/annotation/javax.annotation-api/1.3.2/javax.annotation-api-1.3.2.jar",
     "e04ba5195bcd555dc95650f7cc614d151e4bcd52d29a10b8aa2197f3ab89ab9b"),
    ("org/roaringbitmap/shims/0.9.25/shims-0.9.25.jar",
     "0b82ed6cb1caf0706304b42358d568eb6faf190eadea7f2b2d365cb63156b40d"),
)  # fmt: skip


def user_jars_dir() -> Path:
    """Where `salesopt setup` puts the jars: $XDG_CACHE_HOME/salesopt/jars or ~/.cache/..."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "salesopt" / "jars"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_delta_jars(
    dest: Path | None = None, repository: str = MAVEN_CENTRAL
) -> dict[str, object]:
    """Downloads the pinned jars missing from `dest` (default `user_jars_dir()`), each checked
    against its SHA-256; a file already there with the right checksum is kept. Returns what it
    did (folder, fetched, kept)."""
    folder = dest or user_jars_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fetched, kept = [], []
    # every missing file is downloaded and checked first, in a staging folder; the set moves
    # into place only when complete, so a failed set-up never leaves a partial set that a
    # session would take (it looks for delta-spark)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".staging-") as staging:
        for repo_path, sha256 in DELTA_JARS:
            name = repo_path.rsplit("/", 1)[1]
            if (folder / name).exists() and _sha256(folder / name) == sha256:
                kept.append(name)
                continue
            _download(f"{repository.rstrip('/')}/{repo_path}", Path(staging) / name, sha256)
            fetched.append(name)
        for name in fetched:
            (Path(staging) / name).replace(folder / name)
    return {"jars_dir": str(folder), "fetched": fetched, "kept": kept}


def _download(url: str, target: Path, sha256: str) -> None:
    """`url` into `target`, checked against `sha256`; SetupError (one line) when it fails."""
    log.info("downloading %s", url)
    try:
        with urllib.request.urlopen(url, timeout=120) as response, target.open("wb") as out:
            while block := response.read(1 << 20):
                out.write(block)
    except (OSError, http.client.HTTPException) as exc:
        raise SetupError(
            f"could not download {url} ({exc}): check the network or proxy, or copy the jars "
            "into a folder and set spark.jars_dir"
        ) from None
    if _sha256(target) != sha256:
        raise SetupError(f"{url}: checksum mismatch, not installed (a proxy or mirror changed it?)")

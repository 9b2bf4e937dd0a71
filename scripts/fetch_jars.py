"""Fetches the pinned Delta Lake jars with Maven into a git-ignored folder (default `.jars/`).

Run by `make setup`. Maven resolves `jars/pom.xml` (Delta pinned there) from Maven Central; the
jars that pyspark already ships (Scala, Hadoop, Jackson, Parquet, ...) are dropped so the session
classpath holds one copy of each library. A stamp file records the pom's hash and the pyspark
version, so re-running set-up with nothing changed returns at once. After this step a Spark
session needs no network: the session passes these files as `spark.jars`, never
`spark.jars.packages`.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "jars" / "pom.xml"
STAMP = ".stamp"
_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


def _artifact(jar_name: str) -> str:
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("artifact") if match else jar_name.removesuffix(".jar")


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _stamp_text() -> str:
    import pyspark

    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    return f"pom={digest} pyspark={pyspark.__version__}\n"


def fetch(dest: Path) -> list[Path]:
    """Resolves the pom into `dest`, keeping only jars pyspark lacks. Returns the kept jars."""
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == _stamp_text() and any(dest.glob("*.jar")):
        kept = sorted(dest.glob("*.jar"))
        print(f"Delta jars up to date in {dest} ({len(kept)} jars)")
        return kept
    shipped = {_artifact(p.name) for p in _pyspark_jars().glob("*.jar")}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        print("Fetching Delta jars with Maven:", " ".join(cmd))
        result = subprocess.run(cmd, check=False)
        if result.returncode != 0:
            sys.exit("error: Maven could not resolve jars/pom.xml (is Maven Central reachable?)")
        fetched = sorted(Path(tmp).glob("*.jar"))
        if not fetched:
            sys.exit("error: Maven returned no jars for jars/pom.xml")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        kept = []
        for jar in fetched:
            if _artifact(jar.name) in shipped:
                continue
            shutil.copy2(jar, dest / jar.name)
            kept.append(dest / jar.name)
    if not any(p.name.startswith("delta-spark") for p in kept):
        sys.exit("error: delta-spark jar missing after resolution")
    stamp.write_text(_stamp_text())
    print(f"Kept {len(kept)} jars in {dest}: " + ", ".join(p.name for p in kept))
    return kept


if __name__ == "__main__":
    fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".jars")

"""Fetches pinned jars with Maven into a git-ignored folder.

Two sets, each a pom under `jars/`:

- Delta Lake (`jars/pom.xml` -> `.jars/`), run by `make setup`;
- with `--s3`, the S3A connector (`jars/s3/pom.xml` -> `.jars-s3/`), run by `make s3-jars` for
  an embedded session on S3 (`spark.extra_jars_dir`, docs/operations.md "Object stores").
  Its hadoop-aws must be the Hadoop release pyspark ships, or S3A fails at run time with
  missing methods; the fetch refuses a mismatch.

Maven resolves the pom from Maven Central; the jars that pyspark already ships (Scala, Hadoop,
Jackson, Parquet, Netty, ...) and, for the S3A set, those already in `.jars/` are dropped so the
session classpath holds one copy of each library. A stamp file records the pom's hash, the
pyspark version and (S3A) the jars of `.jars/`, so re-running set-up with nothing changed
returns at once. After this step a Spark session needs no network: the session passes these
files as `spark.jars`, never `spark.jars.packages`.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP = ".stamp"
_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-(?P<version>\d[\w.\-]*)\.jar$")


@dataclass(frozen=True)
class JarSet:
    name: str
    pom: Path
    dest: Path
    required: str  # a jar name prefix that must be among the kept jars
    also_held: Path | None = None  # a folder whose jars are on the classpath already


DELTA = JarSet("Delta", ROOT / "jars" / "pom.xml", ROOT / ".jars", "delta-spark")
S3A = JarSet(
    "S3A", ROOT / "jars" / "s3" / "pom.xml", ROOT / ".jars-s3", "hadoop-aws", ROOT / ".jars"
)


def _artifact(jar_name: str) -> str:
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("artifact") if match else jar_name.removesuffix(".jar")


def _version(jar_name: str) -> str | None:
    match = _VERSIONED_JAR.match(jar_name)
    return match.group("version") if match else None


def _pyspark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def _stamp_text(jar_set: JarSet) -> str:
    """What the kept jars depend on: the pom, pyspark and the jars already held."""
    import pyspark

    digest = hashlib.sha256(jar_set.pom.read_bytes()).hexdigest()
    text = f"pom={digest} pyspark={pyspark.__version__}\n"
    if jar_set.also_held is not None:
        text += "held=" + ",".join(sorted(p.name for p in jar_set.also_held.glob("*.jar"))) + "\n"
    return text


def check_hadoop_match(fetched: list[Path], shipped: list[Path]) -> None:
    """Exits with a clear message when hadoop-aws is not pyspark's Hadoop release."""
    aws = [_version(p.name) for p in fetched if _artifact(p.name) == "hadoop-aws"]
    hadoop = [_version(p.name) for p in shipped if _artifact(p.name) == "hadoop-client-api"]
    if aws and hadoop and aws[0] != hadoop[0]:
        sys.exit(
            f"error: jars/s3/pom.xml pins hadoop-aws {aws[0]} but pyspark ships Hadoop "
            f"{hadoop[0]}; set <hadoop.version> to {hadoop[0]} (and <aws.sdk.version> to the AWS "
            "SDK that Hadoop release uses)"
        )


def fetch(jar_set: JarSet, dest: Path | None = None) -> list[Path]:
    """Resolves the set's pom into `dest`, keeping only jars not held yet. Returns the kept jars."""
    dest = dest or jar_set.dest
    stamp = dest / STAMP
    if stamp.exists() and stamp.read_text() == _stamp_text(jar_set) and any(dest.glob("*.jar")):
        kept = sorted(dest.glob("*.jar"))
        print(f"{jar_set.name} jars up to date in {dest} ({len(kept)} jars)")
        return kept
    shipped_jars = sorted(_pyspark_jars().glob("*.jar"))
    held = {_artifact(p.name) for p in shipped_jars}
    if jar_set.also_held is not None:
        held |= {_artifact(p.name) for p in jar_set.also_held.glob("*.jar")}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(jar_set.pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={tmp}",
        ]
        print(f"Fetching {jar_set.name} jars with Maven:", " ".join(cmd))
        # Maven's own output matters only when it fails
        result = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout + result.stderr)
            sys.exit(
                f"error: Maven could not resolve {jar_set.pom.relative_to(ROOT)} "
                "(is Maven Central reachable?)"
            )
        fetched = sorted(Path(tmp).glob("*.jar"))
        if not fetched:
            sys.exit(f"error: Maven returned no jars for {jar_set.pom.relative_to(ROOT)}")
        check_hadoop_match(fetched, shipped_jars)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        kept = []
        for jar in fetched:
            if _artifact(jar.name) in held:
                continue
            shutil.copy2(jar, dest / jar.name)
            kept.append(dest / jar.name)
    if not any(p.name.startswith(jar_set.required) for p in kept):
        sys.exit(f"error: {jar_set.required} jar missing after resolution")
    stamp.write_text(_stamp_text(jar_set))
    print(f"Kept {len(kept)} jars in {dest}: " + ", ".join(p.name for p in kept))
    return kept


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", nargs="?", type=Path, help="target folder (default per set)")
    parser.add_argument("--s3", action="store_true", help="the S3A connector instead of Delta")
    args = parser.parse_args(argv)
    fetch(S3A if args.s3 else DELTA, args.dest)


if __name__ == "__main__":
    main()

"""Renders a salesopt HTML report in headless Chromium to a PNG, to check it displays offline.

    .venv/bin/python -m bench.screenshot_report data/demo/report/report.html [--out shot.png]

Needs Debian's `chromium` (`apt-get install chromium`); started with networking features off,
so any attempt of the page to reach the network would show as missing content.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=1100,4200",
)  # fmt: skip


def screenshot(report: Path, out: Path) -> Path:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out.resolve()}"]
        url = report.resolve().as_uri()
        subprocess.run([*cmd, url], check=True, capture_output=True, timeout=120)
    if not out.exists() or out.stat().st_size < 10_000:
        sys.exit(f"no usable screenshot written to {out}")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", type=Path)
    p.add_argument("--out", type=Path, default=Path("bench/results/report-screenshot.png"))
    args = p.parse_args()
    print(screenshot(args.report, args.out))


if __name__ == "__main__":
    main()

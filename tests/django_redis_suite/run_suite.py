"""Run django-redis 7.0's own suite against django-redis and against cachewise; compare.

    .venv/bin/python tests/django_redis_suite/run_suite.py [--settings sqlite,sqlite_json] [--list]

For each settings module (default: the plain one, JSON, msgpack, every compressor and the unix
socket), the suite runs twice in fresh processes, once with django-redis' BACKEND and once with
cachewise's (the settings modules differ from upstream in BACKEND only). Prints, per module, how
many tests pass on django-redis and how many of those pass on cachewise; ``--list`` names the
ones that pass on django-redis only. Exit 1 when cachewise passes under ``--min`` (default 90%).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).absolute().parent
DEFAULT = "sqlite,sqlite_json,sqlite_msgpack,sqlite_zlib,sqlite_gzip,sqlite_lz4,sqlite_zstd,sqlite_usock"


def outcomes(settings: str, backend: str, workdir: str) -> dict[str, str]:
    """``{test id: "passed" | "failed" | "skipped"}`` of one run."""
    report = os.path.join(workdir, f"{settings}-{backend}.xml")
    env = {**os.environ, "DJREDIS_SUITE_SETTINGS": settings, "DJREDIS_SUITE_BACKEND": backend}
    command = [sys.executable, "-m", "pytest", "-c", str(HERE / "pytest.ini"), "--rootdir", str(HERE)]
    command += ["-q", "-p", "no:randomly", f"--junitxml={report}", str(HERE)]
    run = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, check=False)
    if not os.path.exists(report):  # pytest itself failed (collection, a plugin): show why
        raise SystemExit(f"{settings} / {backend}: no report\n{run.stdout[-2000:]}{run.stderr[-2000:]}")
    found: dict[str, str] = {}
    for case in ET.parse(report).iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        kinds = {child.tag for child in case}
        found[name] = (
            "failed" if kinds & {"failure", "error"} else "skipped" if "skipped" in kinds else "passed"
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--settings", default=DEFAULT)
    parser.add_argument("--list", action="store_true", help="name the tests only django-redis passes")
    parser.add_argument("--min", type=float, default=90.0, help="percentage cachewise must reach")
    args = parser.parse_args(argv)
    total_base = total_ours = 0
    with tempfile.TemporaryDirectory() as workdir:
        print(f"{'settings':<16} {'django-redis':>12} {'cachewise':>10} {'share':>7}")
        for settings in args.settings.split(","):
            base = outcomes(settings, "django_redis", workdir)
            ours = outcomes(settings, "cachewise", workdir)
            passed = [name for name, outcome in base.items() if outcome == "passed"]
            kept = [name for name in passed if ours.get(name) == "passed"]
            total_base, total_ours = total_base + len(passed), total_ours + len(kept)
            share = 100.0 * len(kept) / max(1, len(passed))
            print(f"{settings:<16} {len(passed):>12} {len(kept):>10} {share:>6.1f}%")
            if args.list:
                for name in sorted(set(passed) - set(kept)):
                    print(f"    only django-redis: {name} (cachewise: {ours.get(name, 'missing')})")
    share = 100.0 * total_ours / max(1, total_base)
    print(f"{'total':<16} {total_base:>12} {total_ours:>10} {share:>6.1f}%")
    return 0 if share >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())

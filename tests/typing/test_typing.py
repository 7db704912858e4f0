"""The typed API refuses misuse: mypy run on ``wrong_usage.py`` reports exactly its marked lines.

``check_api.py`` (what correct code gets back) is checked by ``make typecheck`` itself; this test
covers the other half, which a type-checker run that passes cannot show: that a wrong argument
*is* an error, and that ``reveal_type`` shows a ``@cached`` function's real signature.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRONG = Path(__file__).with_name("wrong_usage.py")
MARK = re.compile(r"  # (?P<kind>[EN]): (?P<text>[^`]+)$")
REPORT = re.compile(
    r"^(?P<path>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$"
)


def _expected() -> tuple[dict[int, set[str]], dict[int, str]]:
    errors: dict[int, set[str]] = {}
    notes: dict[int, str] = {}
    for number, line in enumerate(WRONG.read_text().splitlines(), start=1):
        mark = MARK.search(line)
        if mark is None:
            continue
        if mark["kind"] == "E":
            errors[number] = {code.strip() for code in mark["text"].split(",")}
        else:
            notes[number] = mark["text"]
    return errors, notes


def _mypy() -> list[re.Match[str]]:
    # The project's configuration (strict, Python 3.10, cachewise from src/) and its cache, so a
    # run after `make typecheck` takes seconds. A subprocess: mypy resolves imports from the cwd.
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "pyproject.toml", "--no-error-summary", str(WRONG)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, f"mypy crashed or found nothing:\n{result.stdout}{result.stderr}"
    reports = [REPORT.match(line) for line in result.stdout.splitlines()]
    return [report for report in reports if report is not None and report["path"].endswith("wrong_usage.py")]


def test_every_marked_misuse_is_a_mypy_error_and_nothing_else_is() -> None:
    expected_errors, expected_notes = _expected()
    assert len(expected_errors) >= 15, "the marks were not read"
    reports = _mypy()
    found: dict[int, set[str]] = {}
    for report in reports:
        if report["kind"] == "error":
            found.setdefault(int(report["line"]), set()).add(report["code"] or "")
    assert found == expected_errors
    revealed = {int(r["line"]): r["message"] for r in reports if r["message"].startswith("Revealed type")}
    for line, text in expected_notes.items():
        assert text in revealed.get(line, ""), (line, text, revealed.get(line))


def test_fetch_options_name_get_or_compute_keywords() -> None:
    """``Namespace.get_or_compute(**options)`` is typed by FetchOptions: keep it in step."""
    from cachewise.compute import FetchOptions, get_or_compute

    parameters = inspect.signature(get_or_compute).parameters.values()
    keywords = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert set(FetchOptions.__annotations__) == keywords - {"alias"}  # Namespace passes its own

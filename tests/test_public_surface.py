"""Public versus internal: docs/api.md lists the public modules; docs and README import nothing else.

A name is public when ``cachewise.__all__`` has it or a public module of docs/api.md defines it
without a leading underscore. The docs are what users copy, so an import in them that reaches
into an internal module would make that module a contract by accident.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import cachewise

ROOT = Path(__file__).resolve().parents[1]
API = (ROOT / "docs" / "api.md").read_text()
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]

_CODE = re.compile(r"```[a-z]*\n(.*?)```", re.S)
_FROM = re.compile(r"^\s*from (cachewise[\w.]*) import \(?([\w, ]+)", re.M)
_IMPORT = re.compile(r"^\s*import (cachewise[\w.]*)", re.M)
_DOTTED = re.compile(r"""["'](cachewise(?:\.\w+)+)["']""")


def _public_modules() -> set[str]:
    section = API.split("## Public modules", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(cachewise[\w.]*)` \|", section, re.M))


PUBLIC = _public_modules()


def _code(page: Path) -> str:
    return "\n".join(_CODE.findall(page.read_text()))


def test_the_public_modules_import() -> None:
    assert "cachewise" in PUBLIC
    assert "cachewise.orm" in PUBLIC
    for module in PUBLIC:
        importlib.import_module(module)


def test_every_exported_name_is_in_the_api_reference() -> None:
    missing = [name for name in cachewise.__all__ if f"| `{name}` |" not in API]
    assert not missing, f"add to docs/api.md: {missing}"


def test_docs_import_only_public_names() -> None:
    wrong = []
    for page in PAGES:
        code = _code(page)
        for module, names in _FROM.findall(code):
            if module not in PUBLIC:
                wrong.append(f"{page.name}: from {module} import ...")
            wrong += [f"{page.name}: {module}.{n}" for n in re.split(r"[, ]+", names) if n.startswith("_")]
        wrong += [f"{page.name}: import {m}" for m in _IMPORT.findall(code) if m not in PUBLIC]
    assert not wrong, "docs import internal modules or names (see docs/api.md):\n" + "\n".join(wrong)


def test_dotted_paths_in_docs_name_public_modules() -> None:
    """Settings strings ("cachewise.middleware.UpdateCacheMiddleware") name public modules."""
    wrong = []
    for page in PAGES:
        for path in _DOTTED.findall(_code(page)):
            module, _, name = path.rpartition(".")
            if path not in PUBLIC and (module not in PUBLIC or name.startswith("_")):
                wrong.append(f"{page.name}: {path}")
    assert not wrong, "docs name internal dotted paths (see docs/api.md):\n" + "\n".join(wrong)

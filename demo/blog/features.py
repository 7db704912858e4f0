"""Which cachewise features this checkout provides, looked up once by import.

The demo measures what exists and names what does not: a view whose cachewise feature is missing
keeps its uncached variant and the report says the cached one was not measured. Nothing is
replaced by a stand-in, so no figure in the report comes from code that is not cachewise's.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["FEATURES", "feature", "missing_features"]

#: feature label -> (module, attribute)
FEATURES: dict[str, tuple[str, str]] = {
    "cache_page": ("cachewise.decorators", "cache_page"),
    "cached": ("cachewise.compute.api", "cached"),
    "cache_tag": ("cachewise.templatetags.cachewise", "register"),
    "cached_list": ("cachewise.orm", "cached_list"),
    "CachedRows": ("cachewise.orm", "CachedRows"),
    "Counter": ("cachewise.counters.counter", "Counter"),
    "dashboard": ("cachewise.monitoring.urls", "urlpatterns"),
}


def feature(label: str) -> Any | None:
    """The cachewise object behind ``label``, or None when this checkout does not have it."""
    module_name, attribute = FEATURES[label]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return getattr(module, attribute, None)


def missing_features() -> list[str]:
    """Labels of the features this checkout lacks, in declaration order."""
    return [label for label in FEATURES if feature(label) is None]

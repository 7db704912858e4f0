"""Child processes of tests/test_orm_store.py (spawned: each sets Django up itself).

Nothing here imports Django at module level: a spawned child imports this module first.
"""

from __future__ import annotations

import os
import traceback
from typing import Any


def bump(caches: dict[str, Any], counter_keys: list[str], ttl: int) -> None:
    """Bump ORM counters as another process's write would, then exit 0 (99 on any error)."""
    code = 99
    try:
        os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        import django
        from django.test import override_settings

        django.setup()
        override_settings(CACHES=caches).enable()
        from cachewise.orm import generations

        generations.bump("default", counter_keys, ttl)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)

"""The production checklist as Django system checks (ids ``cachewise.E001``, ``cachewise.W001``...).

Filled in by the Foundation issue's checks work; see docs/checks.md.
"""

from __future__ import annotations

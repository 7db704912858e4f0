"""Models used by the ORM, view and demo-like tests."""

from __future__ import annotations

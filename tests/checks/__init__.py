"""Tests of Django system checks (src/cachewise/checks/)."""

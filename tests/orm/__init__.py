"""Tests of ORM caching (src/cachewise/orm/)."""

"""Tests of the Redis cache backend and its clients (src/cachewise/backends/)."""

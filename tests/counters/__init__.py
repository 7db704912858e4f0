"""Tests of Counter and its exactly-once flush (src/cachewise/counters/)."""

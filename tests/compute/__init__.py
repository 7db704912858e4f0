"""Tests of get_or_compute, @cached, stampede protection, Namespace (src/cachewise/compute/)."""

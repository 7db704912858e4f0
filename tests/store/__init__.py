"""Tests of the store layer (src/cachewise/store/)."""

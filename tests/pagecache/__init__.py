"""Tests of the page cache, middleware and fragment cache (src/cachewise/pagecache/)."""

"""Tests of ``manage.py cachewise`` subcommands (src/cachewise/cli/)."""

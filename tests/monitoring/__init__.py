"""Tests of metrics, Redis health, Prometheus and the dashboard (src/cachewise/monitoring/)."""

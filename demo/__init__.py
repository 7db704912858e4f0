"""The cachewise demo: a small Django blog, a load run against it and a readable report.

``python -m demo`` (``make demo``) starts a private Redis, migrates and seeds the blog, serves it
with Gunicorn on a free loopback port, loads every view with and without caching, runs a stampede
and an outage scenario, and prints a report (also written as HTML). ``--serve`` keeps the site up
on 127.0.0.1:8000 instead. Importing this package configures nothing, so tests can import it.
"""

"""The store layer: what the compute, version and counter layers need from a cache alias."""

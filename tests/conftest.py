"""Test configuration: property-based tests are reproducible (fixed examples, no deadline)."""

from hypothesis import settings

settings.register_profile("costsim", derandomize=True, deadline=None, database=None)
settings.load_profile("costsim")

"""Runnable example workflows (YAML + step modules), used by the README and the test suite."""

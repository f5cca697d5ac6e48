"""Workflows of the distributed benchmark (:mod:`loadtests.bench_distributed`), with their steps."""

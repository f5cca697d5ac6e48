"""Test support shipped with the SDK: the harness and the contract suite's provider registry."""

from __future__ import annotations

from ruvon.testing.harness import StepReport, TestHarness

__all__ = ["StepReport", "TestHarness"]

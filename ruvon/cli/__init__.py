"""The ``ruvon`` command: run, inspect and operate workflows from a terminal.

The entry point is :func:`ruvon.cli.main.main`. Commands live in ``commands_*.py``; what they
share is in ``runtime`` (settings, providers, import paths), ``failures`` (exit codes),
``render`` (rich and JSON output), ``live`` (the step-by-step observer) and ``driver`` (running a
workflow here until it finishes or waits for a person).
"""

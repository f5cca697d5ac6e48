"""The studies of ``python -m loadtests.bench all``: how cost grows with workers, state, width."""

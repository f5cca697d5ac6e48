"""Loan application: credit-check sub-workflow, routed decision, human review with a deadline."""

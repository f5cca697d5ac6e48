"""Data pipeline: load records, transform them in a parallel fan-out, load them in batches."""

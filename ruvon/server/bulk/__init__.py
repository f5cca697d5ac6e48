"""Bulk retry / cancel by filter, run as a Ruvon workflow (``ruvon.BulkOperation``).

``spec`` (the request and the state it becomes), ``steps`` (the step function, importable on
workers without the server extra), ``definition`` (the built-in type and why workers need no
registry entry for it), ``embedded`` (running it in the server's process on SQLite).
"""

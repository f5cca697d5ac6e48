"""Persistence providers: ``memory`` (in-process), ``sqlite``, ``postgres`` and ``redis``.

Each server-backed provider is a sub-package that keeps its queries (``sql/``) or scripts beside
its Python; ``factory`` picks one from a URL and ``queries`` loads the named queries they share.
"""

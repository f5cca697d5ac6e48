"""``python -m beat [--loglevel LEVEL]``: ``python -m ruvon.cluster.beat`` (``ruvon beat``)."""

from __future__ import annotations

from ruvon.cluster.beat import main

if __name__ == "__main__":
    main()

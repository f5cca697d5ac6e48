"""``python -m beat [--loglevel LEVEL]``: run the Ruvon beat in this process (``ruvon beat``)."""

from __future__ import annotations

from ruvon.cluster.beat import main

if __name__ == "__main__":
    main()

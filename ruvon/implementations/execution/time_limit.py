"""Stop a step function that runs past its timeout, before another attempt can start.

A thread cannot be killed, so a timed-out body that is merely abandoned keeps running and a
retry overlaps it. On a worker the body runs in the Celery task's thread, which in a prefork
(or solo) pool is the process's main thread; there the attempt is stopped in two stages, as
Celery's soft and hard time limits do:

1. **soft**, at the timeout: a ``SIGALRM`` handler raises :class:`AttemptInterrupted` inside the
   function (a ``BaseException``, so ``except Exception`` in user code does not swallow it);
   the caller turns it into a ``StepTimeoutError`` and the retry policy decides what follows;
2. **hard**, :data:`HARD_STOP_GRACE` seconds later, if the function is still running (it
   swallowed the interrupt, or sits in C code that signals cannot reach): a watchdog thread
   kills this process (``SIGKILL``). The pool replaces it; the run's lease expires and the
   zombie sweep gives it to the next attempt, which therefore never overlaps this one.

Off the main thread (a ``threads`` pool) only the hard stop applies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

__all__ = ["HARD_STOP_GRACE", "AttemptInterrupted", "call_with_time_limit"]

T = TypeVar("T")

logger = logging.getLogger("ruvon.worker")

#: Seconds between the soft stop (the interrupt) and the hard one (the process is killed).
HARD_STOP_GRACE = 2.0


class AttemptInterrupted(BaseException):
    """Raised inside a step function whose attempt ran out of time."""


def call_with_time_limit(
    function: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], seconds: float
) -> T:
    """``function(*args, **kwargs)`` stopped after ``seconds`` (see the module docstring).

    Raises :class:`AttemptInterrupted` when the soft stop ended the call.
    """
    finished = threading.Event()
    watchdog = threading.Timer(seconds + HARD_STOP_GRACE, _hard_stop, (finished, seconds))
    watchdog.daemon = True
    soft = threading.current_thread() is threading.main_thread()
    previous: Any = None
    if soft:
        previous = signal.signal(signal.SIGALRM, _interrupt)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    watchdog.start()
    try:
        return function(*args, **kwargs)
    finally:
        if soft:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        finished.set()
        watchdog.cancel()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise AttemptInterrupted


def _hard_stop(finished: threading.Event, seconds: float) -> None:
    if finished.is_set():
        return
    logger.critical(
        "a step function still runs %.1fs past its %gs timeout (it did not stop when "
        "interrupted): ending worker process %d so no other attempt can overlap it",
        HARD_STOP_GRACE,
        seconds,
        os.getpid(),
    )
    os.kill(os.getpid(), signal.SIGKILL)

"""A chain stops continuing while more urgent messages wait; the broker is asked sparingly."""

from __future__ import annotations

from collections.abc import Collection

from ruvon.cluster.continuation import ContinuationBudget, ContinuationLimits, UrgencyProbe
from ruvon.providers.runs import RunKind, RunRequest


class Broker:
    """Answers "is anything above this priority waiting?" from a set of waiting priorities."""

    def __init__(self) -> None:
        self.waiting: set[int] = set()
        self.asked: list[tuple[tuple[str, ...], int]] = []
        self.down = False

    def __call__(self, queues: Collection[str], priority: int) -> bool:
        self.asked.append((tuple(queues), priority))
        if self.down:
            raise ConnectionError("broker down")
        return any(p > priority for p in self.waiting)


def _run(priority: int) -> RunRequest:
    return RunRequest("wf", RunKind.STEP, "Next", queue="q", priority=priority)


def test_a_chain_yields_while_a_more_urgent_message_waits() -> None:
    broker = Broker()
    probe = UrgencyProbe(broker, ["q", "other"], ttl=0.0)
    chain = ContinuationBudget("me", 30.0, {"q"}, ContinuationLimits(), probe)
    assert chain.take([_run(3)], "wf") is not None
    broker.waiting = {5}
    assert chain.take([_run(3)], "wf") is None  # announced behind the priority-5 message
    assert chain.take([_run(5)], "wf") is not None  # nothing above 5 waits
    assert broker.asked[0] == (("other", "q"), 3)


def test_answers_are_reused_for_the_ttl_and_a_dead_broker_stops_nothing() -> None:
    broker = Broker()
    probe = UrgencyProbe(broker, ["q"], ttl=60.0)
    broker.waiting = {9}
    assert probe(0) is True
    broker.waiting = set()
    assert probe(0) is True and len(broker.asked) == 1  # cached
    assert probe(9) is False and len(broker.asked) == 1  # nothing is above 9: not asked
    broker.down = True
    assert UrgencyProbe(broker, ["q"])(4) is False
    assert UrgencyProbe(broker, [])(0) is False  # no queues: nothing to ask about

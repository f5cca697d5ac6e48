"""The engine: the state machine of one workflow, built on the provider protocols only.

* :mod:`~ruvon.engine.runtime` — :class:`StepRuntime`, what a step handler may read and do
  (and the child-factory and distributed-part protocols it reaches through it);
* :mod:`~ruvon.engine.outcomes` — what a handler returns, and the handler protocol;
* :mod:`~ruvon.engine.machine` — transitions, commits, failures; handed its handlers;
* :mod:`~ruvon.engine.distribution` (+ :mod:`~ruvon.engine.outbox`) — the distributed part it
  is composed with on a cluster: the claim, the runs its saves carry;
* :mod:`~ruvon.engine.children`, :mod:`~ruvon.engine.invoke`, :mod:`~ruvon.engine.saga`,
  :mod:`~ruvon.engine.state`, :mod:`~ruvon.engine.events`, :mod:`~ruvon.engine.snapshot` — child
  workflows, calling a step function, compensation, state, observer events, rollback copies.

It imports ``providers/``, ``definitions/``, records and models; never ``steps/`` (it is handed
them) nor an implementation.
"""

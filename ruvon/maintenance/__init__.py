"""The beat's maintenance: sweeps that keep the cluster's promise (nothing started is lost).

* :mod:`~ruvon.maintenance.sweeps` — zombie recovery, lost-message re-dispatch, parent and join
  reconciliation, due timers.
* :mod:`~ruvon.maintenance.schedules` — cron schedules that start workflows (their specs:
  :mod:`~ruvon.maintenance.schedule_spec`).
"""

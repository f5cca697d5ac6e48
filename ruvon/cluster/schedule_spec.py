"""ScheduleSpec: when a schedule fires, parsed from a registry entry or a stored ``cron`` column.

Three forms are accepted: a 5-field cron expression (croniter, evaluated in UTC; also croniter's
``@hourly``-style keywords), a crontab mapping with Celery's keys (``minute``, ``hour``,
``day_of_month``, ``month_of_year``, ``day_of_week``; missing keys are ``*``), and an interval
(a number of seconds, or ``every 5s`` / ``@every 5m``). Cron text is stored as given; an interval
as ``@every <seconds>s``, its ticks aligned to the Unix epoch so every poller computes the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from ruvon.errors import DefinitionError

__all__ = ["ScheduleSpec", "as_utc"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EVERY = re.compile(r"^@?every\s*(?P<amount>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[a-z]*)$", re.I)
_UNITS = {
    **dict.fromkeys(("", "s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_CRONTAB_KEYS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
_CRON_KEYWORDS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_CRON_FIELDS = "minute hour day-of-month month day-of-week, in UTC"
_CRON = f"5 fields: {_CRON_FIELDS}"
_FORMS = (
    f"a cron expression ({_CRON}), a crontab mapping with keys {', '.join(_CRONTAB_KEYS)}, "
    "or an interval (a number of seconds, or text like 'every 5s')"
)


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC (as on every backend); aware ones are converted to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _invalid(schedule: str, value: object, reason: str = f"expected {_FORMS}") -> DefinitionError:
    return DefinitionError(f"schedule '{schedule}': invalid spec {value!r}: {reason}")


@dataclass(frozen=True)
class ScheduleSpec:
    """When a schedule fires: a cron expression (UTC) or a fixed interval (epoch-aligned).

    ``text`` is what the ``cron`` column stores; ``interval_us`` is set for intervals only.
    """

    text: str
    interval_us: int | None = None

    @classmethod
    def parse(cls, value: object, *, schedule: str = "schedule") -> ScheduleSpec:
        """A spec from a registry entry: cron string, crontab mapping, or interval.

        Raises :class:`~ruvon.errors.DefinitionError` naming ``schedule`` and the value.
        """
        if isinstance(value, bool):
            raise _invalid(schedule, value)
        if isinstance(value, int | float):
            return cls._interval(float(value), schedule, value)
        if isinstance(value, Mapping):
            return cls._crontab(value, schedule)
        if not isinstance(value, str):
            raise _invalid(schedule, value)
        text = " ".join(value.split())
        every = _EVERY.match(text)
        if every is not None:
            unit = _UNITS.get(every["unit"].lower())
            if unit is None:
                raise _invalid(
                    schedule, value, f"unknown unit '{every['unit']}' (use s, m, h or d)"
                )
            return cls._interval(float(every["amount"]) * unit, schedule, value)
        if text.lower() not in _CRON_KEYWORDS and len(text.split()) != 5:
            raise _invalid(
                schedule,
                value,
                f"a cron expression has 5 fields ({_CRON_FIELDS}), not {len(text.split())}",
            )
        return cls._cron(text, schedule, value)

    @classmethod
    def stored(cls, text: str, *, schedule: str = "schedule") -> ScheduleSpec:
        """The spec of a stored row: ``@every Ns``, or any expression croniter accepts.

        More lenient than :meth:`parse`: CRON_SCHEDULE steps store what croniter validates.
        """
        every = _EVERY.match(text.strip())
        unit = _UNITS.get(every["unit"].lower()) if every is not None else None
        if every is not None and unit is not None:
            return cls._interval(float(every["amount"]) * unit, schedule, text)
        return cls._cron(" ".join(text.split()), schedule, text)

    @classmethod
    def _interval(cls, seconds: float, schedule: str, value: object) -> ScheduleSpec:
        micros = round(seconds * 1_000_000) if math.isfinite(seconds) else 0
        if micros <= 0:
            raise _invalid(schedule, value, "an interval must be a positive number of seconds")
        exact = micros / 1_000_000
        shown = str(int(exact)) if exact.is_integer() else f"{exact:.6f}".rstrip("0")
        return cls(f"@every {shown}s", micros)

    @classmethod
    def _cron(cls, text: str, schedule: str, value: object) -> ScheduleSpec:
        if not text or not croniter.is_valid(text):
            raise _invalid(schedule, value, f"not a valid cron expression ({_CRON})")
        return cls(text)

    @classmethod
    def _crontab(cls, value: Mapping[Any, Any], schedule: str) -> ScheduleSpec:
        unknown = sorted(str(key) for key in value if key not in _CRONTAB_KEYS)
        if unknown:
            raise _invalid(
                schedule,
                dict(value),
                f"unknown crontab key(s) {', '.join(unknown)} (known: {', '.join(_CRONTAB_KEYS)})",
            )
        fields = []
        for key in _CRONTAB_KEYS:
            item = value.get(key, "*")
            if isinstance(item, list | tuple):
                item = ",".join(str(part) for part in item)
            text = str(item).strip()
            if isinstance(item, bool) or not text or len(text.split()) != 1:
                raise _invalid(schedule, dict(value), f"bad {key} {item!r}")
            fields.append(text)
        return cls._cron(" ".join(fields), schedule, dict(value))

    @property
    def interval_seconds(self) -> float | None:
        """The interval in seconds (None for a cron expression)."""
        return None if self.interval_us is None else self.interval_us / 1_000_000

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (UTC-aware; naive moments are UTC)."""
        moment = as_utc(moment)
        if self.interval_us is not None:
            elapsed = (moment - _EPOCH) // _MICROSECOND
            return _EPOCH + _MICROSECOND * ((elapsed // self.interval_us + 1) * self.interval_us)
        return as_utc(croniter(self.text, moment).get_next(datetime))

    def latest_at_or_before(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment`` (UTC-aware)."""
        moment = as_utc(moment)
        if self.interval_us is not None:
            elapsed = (moment - _EPOCH) // _MICROSECOND
            return _EPOCH + _MICROSECOND * (elapsed // self.interval_us * self.interval_us)
        return as_utc(croniter(self.text, moment + _MICROSECOND).get_prev(datetime))

    def due_ticks(self, first: datetime, now: datetime, limit: int) -> tuple[list[datetime], bool]:
        """The ticks from ``first`` (a stored ``next_run_at``, <= ``now``) to ``now``, oldest
        first: at most the latest ``limit`` of them, and whether older ones were left out.

        Walks back from ``now``, so a long outage costs ``limit`` steps, not one per missed tick.
        """
        first = as_utc(first)
        ticks: list[datetime] = []
        moment = self.latest_at_or_before(now)
        while len(ticks) < limit and moment > first:
            ticks.append(moment)
            moment = self.latest_at_or_before(moment - _MICROSECOND)
        skipped = len(ticks) >= limit
        if not skipped:
            ticks.append(first)
        return ticks[::-1], skipped

"""The chaos invariants, read from PostgreSQL after a run has drained (DESIGN.md, "The
correctness model"): a :class:`ChaosReport` with the figures, and :meth:`ChaosReport.violations`.

What must hold whatever was killed, frozen or restarted:

* every workflow started is terminal (none lost), with the outcome its input asked for
  (COMPLETED, or FAILED_ROLLED_BACK when ``fail_at_end``);
* the side effect is applied exactly once per workflow (at most once per (workflow, step), and
  present for every workflow that got past it); each step result is committed once;
* every PARALLEL join fires exactly once (one DONE join run, one PARALLEL_TASKS_MERGED);
* no step run is RUNNING with an expired lease once the sweeps had their turn;
* parents agree with their children;
* a rolled-back workflow compensated each completed step once, newest first.

Raw re-executions (a step function run again after its worker died) are allowed: they are
reported, as are the recovery latencies (fault -> the sweep's WORKER_CRASH_DETECTED, and
fault -> the re-claim of the run) and the drain time.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from ruvon.implementations.persistence.queries import load_queries

__all__ = [
    "FAILED_BY_DATABASE",
    "ROOT_TYPE",
    "STRANDED",
    "ChaosReport",
    "Fault",
    "check_invariants",
    "create_chaos_tables",
]

# Once known bugs (fixed: the claimed run stays open through a worker's inline continuation,
# and a database error no longer fails a workflow); now plain violations.
STRANDED = "workflows stranded ACTIVE (or waiting for such a child) without an open step run"
FAILED_BY_DATABASE = "workflows failed by a database error rather than by their input"

Q = load_queries(Path(__file__).with_name("invariants.sql"))
ROOT_TYPE = "ChaosKitchenSink"
TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "FAILED_ROLLED_BACK", "FAILED_CHILD_WORKFLOW",
     "FAILED_WORKER_CRASH", "CANCELLED"}
)  # fmt: skip
FAILED = TERMINAL - {"COMPLETED"}
# The compensatable steps, newest first: a rollback undoes those completed, in this order.
ROLLBACK_ORDER = ["Charge", "Reserve"]
_SHOWN = 5  # examples listed per violation


@dataclass(frozen=True)
class Fault:
    """One injected fault: when (UTC), what, and which processes it hit (empty: all of them)."""

    at: datetime
    kind: str
    pids: frozenset[int] = frozenset()


@dataclass
class ChaosReport:
    """What the database says after a chaos run; :meth:`figures` prints it."""

    scenario: str
    workflows: int = 0
    children: int = 0
    expected_workflows: int = 0
    lost: list[str] = field(default_factory=list)
    # ACTIVE without an open step run after a kill, or waiting for such a child (STRANDED).
    stranded: list[str] = field(default_factory=list)
    # Failed by a database error, not by its input (FAILED_BY_DATABASE).
    failed_by_database: list[str] = field(default_factory=list)
    unexpected_outcomes: list[str] = field(default_factory=list)
    applied_effects: int = 0
    missing_effects: list[str] = field(default_factory=list)
    duplicated_effects: list[str] = field(default_factory=list)
    effect_executions: int = 0
    raw_reexecutions: int = 0
    double_commits: list[str] = field(default_factory=list)
    joins: int = 0
    joins_not_once: list[str] = field(default_factory=list)
    expired_running: list[str] = field(default_factory=list)
    parent_child: list[str] = field(default_factory=list)
    orphan_children: int = 0
    rolled_back: int = 0
    compensation_errors: list[str] = field(default_factory=list)
    compensation_calls: int = 0
    # Known ruvon issue (reported, not asserted): compensation_log rows of rollbacks whose
    # attempt never committed (saga.compensate writes them outside the fenced save).
    compensation_log_extra: list[str] = field(default_factory=list)
    crash_detections: int = 0
    duplicate_detections: list[str] = field(default_factory=list)
    unexplained_detections: list[str] = field(default_factory=list)
    retries: int = 0
    detect_latency: list[float] = field(default_factory=list)
    reclaim_latency: list[float] = field(default_factory=list)
    drain_seconds: float = 0.0
    faults: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def violations(self) -> list[str]:
        """Every broken invariant, with up to five examples each (empty: all hold)."""
        checks = {
            "workflows lost (not terminal after the drain deadline)": self.lost,
            "unexpected outcomes": self.unexpected_outcomes,
            "effects missing for workflows past the effect step": self.missing_effects,
            "duplicated applied effects": self.duplicated_effects,
            "step results committed more than once": self.double_commits,
            "PARALLEL joins not fired exactly once": self.joins_not_once,
            "RUNNING step runs with an expired lease": self.expired_running,
            "parents inconsistent with their children": self.parent_child,
            "compensations not once each in reverse order": self.compensation_errors,
            "zombie detections counted twice for one attempt": self.duplicate_detections,
            STRANDED: self.stranded,
            FAILED_BY_DATABASE: self.failed_by_database,
        }
        found = [
            f"{name}: {len(items)} {items[:_SHOWN]}" for name, items in checks.items() if items
        ]
        if self.workflows != self.expected_workflows:
            found.append(f"{self.expected_workflows} workflows started, {self.workflows} stored")
        return found

    def figures(self) -> str:
        """The run's figures, one per line, ready to print."""

        def latency(values: Sequence[float]) -> str:
            if not values:
                return "n/a"
            return (
                f"p50 {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"
            )

        lines = [
            f"== chaos {self.scenario} ==",
            f"workflows: {self.workflows} (+{self.children} children), faults injected: "
            f"{self.faults}, rolled back: {self.rolled_back}",
            f"lost (must be 0): {len(self.lost)}",
            f"stranded after an inline commit (must be 0): {len(self.stranded)}",
            f"unexpected outcomes (must be 0): {len(self.unexpected_outcomes)}",
            f"failed by a database error (must be 0): {len(self.failed_by_database)}",
            f"applied effects: {self.applied_effects}, missing (must be 0): "
            f"{len(self.missing_effects)}, duplicated (must be 0): {len(self.duplicated_effects)}",
            f"raw re-executions (effect + recorded steps): {self.raw_reexecutions} "
            f"(effect executions {self.effect_executions}); retries audited: {self.retries}",
            f"double commits (must be 0): {len(self.double_commits)}",
            f"joins: {self.joins}, fired != 1 (must be 0): {len(self.joins_not_once)}",
            f"RUNNING with expired lease (must be 0): {len(self.expired_running)}",
            f"parent/child inconsistencies (must be 0): {len(self.parent_child)}; orphan "
            f"children: {self.orphan_children}",
            f"compensation errors (must be 0): {len(self.compensation_errors)}; compensation "
            f"function calls: {self.compensation_calls}",
            f"compensation_log rows of rollbacks that never committed (reported, see note): "
            f"{len(self.compensation_log_extra)} workflows {self.compensation_log_extra[:2]}",
            f"zombie detections: {self.crash_detections} (unexplained by a fault: "
            f"{len(self.unexplained_detections)}, duplicated: {len(self.duplicate_detections)})",
            f"recovery latency fault -> detected: {latency(self.detect_latency)}",
            f"recovery latency fault -> re-claimed: {latency(self.reclaim_latency)}",
            f"drain time: {self.drain_seconds:.2f} s",
        ]
        lines += [f"{key}: {value}" for key, value in self.notes.items()]
        return "\n".join(lines)


async def _connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url, timeout=10)
    for json_type in ("jsonb", "json"):  # state and definition_snapshot are json
        await conn.set_type_codec(
            json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
    return conn


async def create_chaos_tables(database_url: str) -> None:
    """The step functions' tables (``chaos_calls``, ``chaos_effects``) in the run's database."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        await conn.execute(Q["create_tables"])
    finally:
        await conn.close()


async def check_invariants(
    database_url: str,
    scenario: str,
    *,
    expected_workflows: int,
    faults: Iterable[Fault] = (),
    drain_seconds: float = 0.0,
) -> ChaosReport:
    """Read the run's database and fill a :class:`ChaosReport`."""
    report = ChaosReport(scenario, expected_workflows=expected_workflows)
    report.drain_seconds = drain_seconds
    fault_list = sorted(faults, key=lambda f: f.at)
    report.faults = len(fault_list)
    conn = await _connect(database_url)
    try:
        rows = {name: await conn.fetch(Q[name]) for name in _READS}
    finally:
        await conn.close()
    workflows = {r[0]: r for r in rows["workflows"]}
    past_effect = _check_workflows(report, workflows)
    _check_effects(report, rows, {wf_id: workflows[wf_id][6] for wf_id in past_effect})
    _check_joins(report, rows["join_runs"])
    report.expired_running = [
        f"run {r[0]} {r[2]} {r[3]}{r[4]} ({r[6]})" for r in rows["expired_running"]
    ]
    _check_compensations(report, workflows, rows)
    _check_recovery(report, rows, fault_list)
    report.retries = int(rows["retries"][0][0])
    stories = (
        ("lost", report.lost),
        ("stranded", report.stranded),
        ("unexpected", report.unexpected_outcomes),
        ("failed by a database error", report.failed_by_database),
    )
    for name, entries in stories:
        if entries:
            report.notes[f"story of the {name} workflows"] = await _story(
                database_url, [_workflow_id(entry) for entry in entries[:2]]
            )
    return report


def _workflow_id(entry: str) -> str:
    """The workflow id in a report entry (``TYPE ID STATUS`` or ``ID STATUS ...``)."""
    first, _, rest = entry.partition(" ")
    return rest.split()[0] if first == ROOT_TYPE or first == "ChaosChild" else first


async def _story(database_url: str, workflow_ids: list[str]) -> str:
    """Step runs and audit rows of ``workflow_ids``, as text (to diagnose a lost workflow)."""
    conn = await _connect(database_url)
    try:
        runs = await conn.fetch(Q["story_runs"], workflow_ids)
        audit = await conn.fetch(Q["story_audit"], workflow_ids)
    finally:
        await conn.close()
    lines = ["runs:", *(str(tuple(r)) for r in runs), "audit:", *(str(tuple(r)) for r in audit)]
    return "\n".join(lines)


_READS = (
    "workflows", "applied_effects", "call_counts", "step_commits", "join_runs",
    "expired_running", "compensation_log", "compensation_audit", "crash_audit", "run_claims",
    "retries",
)  # fmt: skip


def _check_workflows(report: ChaosReport, workflows: dict[str, asyncpg.Record]) -> set[str]:
    """Terminal, expected outcome, parent/child agreement; returns roots past the effect step."""
    children: defaultdict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in workflows.values():
        if row[3] is not None:
            children[row[3]].append(row)
    past_effect: set[str] = set()

    def is_stranded(row: asyncpg.Record | None) -> bool:
        return row is not None and row[2] == "ACTIVE" and row[9] == 0

    for wf_id, row in workflows.items():
        status = row[2]
        blocked = workflows.get(row[4]) if row[4] else None
        if is_stranded(row) or (status == "PENDING_SUB_WORKFLOW" and is_stranded(blocked)):
            report.stranded.append(f"{row[1]} {wf_id} {status}")
        elif status not in TERMINAL:
            report.lost.append(f"{row[1]} {wf_id} {status}")
        if row[1] != ROOT_TYPE:
            report.children += 1
            continue
        report.workflows += 1
        expected = "FAILED_ROLLED_BACK" if row[5] else "COMPLETED"
        error = row[10] or ""
        entry = f"{wf_id} {status} (expected {expected}): {error[:120]}"
        if status in FAILED and error.startswith("PersistenceError"):
            report.failed_by_database.append(entry)
        elif status in TERMINAL and (
            status != expected or (row[5] and "PlannedFailure" not in error)
        ):
            report.unexpected_outcomes.append(entry)
        elif status == expected:  # it ran every step up to Finalize
            past_effect.add(wf_id)
        report.rolled_back += status == "FAILED_ROLLED_BACK"
        kids = children.get(wf_id, [])
        report.orphan_children += max(len(kids) - 1, 0)
        if status == "PENDING_SUB_WORKFLOW" and blocked is not None and blocked[2] in TERMINAL:
            report.parent_child.append(f"{wf_id} still waits for its {blocked[2]} child")
        if wf_id in past_effect and not any(k[2] == "COMPLETED" for k in kids):
            states = [k[2] for k in kids]
            report.parent_child.append(f"{wf_id} {status} without a completed child: {states}")
        if status == "FAILED_CHILD_WORKFLOW" and not any(k[2] in FAILED for k in kids):
            report.parent_child.append(f"{wf_id} FAILED_CHILD_WORKFLOW, no failed child")
    return past_effect


def _check_effects(
    report: ChaosReport, rows: dict[str, list[asyncpg.Record]], past_effect: dict[str, str]
) -> None:
    """``past_effect``: workflow -> the effect key its committed state names."""
    applied: dict[str, list[str]] = {}
    for wf_id, step, count, keys in rows["applied_effects"]:
        report.applied_effects += count
        applied[wf_id] = keys
        if count > 1:
            report.duplicated_effects.append(f"{wf_id} {step}: {count} keys {keys}")
    for wf_id, key in sorted(past_effect.items()):
        if wf_id not in applied:
            report.missing_effects.append(wf_id)
        elif key not in applied[wf_id]:  # the committed result is not the applied effect's
            report.missing_effects.append(f"{wf_id}: state says {key}, applied {applied[wf_id]}")
    for kind, calls, keys in rows["call_counts"]:
        if kind in ("step", "effect"):
            report.raw_reexecutions += calls - keys
        if kind == "effect":
            report.effect_executions = calls
        if kind == "compensation":
            report.compensation_calls = calls
    report.double_commits = [
        f"{wf_id} {step} x{count}" for wf_id, step, count in rows["step_commits"] if count > 1
    ]


def _check_joins(report: ChaosReport, join_rows: list[asyncpg.Record]) -> None:
    for wf_id, step, run, join_runs, merged, completed in join_rows:
        report.joins += 1
        # Once the step completed, its join ran exactly once; before that, at most once.
        fired_once = join_runs == 1 and merged == 1 if completed else join_runs <= 1 and merged <= 1
        if not fired_once:
            report.joins_not_once.append(
                f"{wf_id} {step}#{run}: {join_runs} join runs, merged {merged}x"
            )


def _check_compensations(
    report: ChaosReport,
    workflows: dict[str, asyncpg.Record],
    rows: dict[str, list[asyncpg.Record]],
) -> None:
    def by_workflow(records: list[asyncpg.Record]) -> dict[str, list[str]]:
        grouped: defaultdict[str, list[str]] = defaultdict(list)
        for record in records:
            grouped[record[0]].append(record[1])
        return grouped

    logged = by_workflow(rows["compensation_log"])
    audited = by_workflow(rows["compensation_audit"])
    failed_entries = {r[0] for r in rows["compensation_log"] if not r[2]}
    committed = {(r[0], r[1]) for r in rows["step_commits"]}
    for wf_id, row in workflows.items():
        # A rollback undoes the compensatable steps whose results committed, newest first.
        done = [step for step in ROLLBACK_ORDER if (wf_id, step) in committed]
        expected = done if row[2] == "FAILED_ROLLED_BACK" else []
        # The audit rows commit with the fenced terminal save: exactly the rollback that won.
        if audited.get(wf_id, []) != expected:
            report.compensation_errors.append(
                f"{wf_id} {row[2]}: audit {audited.get(wf_id, [])}, expected {expected}"
            )
        # compensation_log is written as each compensation runs: the winning rollback is its
        # tail; anything before it is a rollback whose attempt died or lost its claim.
        log = logged.get(wf_id, [])
        if log[len(log) - len(expected) :] != expected or (log and not expected):
            report.compensation_errors.append(
                f"{wf_id} {row[2]}: compensation_log {log}, expected to end with {expected}"
            )
        elif len(log) > len(expected):
            report.compensation_log_extra.append(f"{wf_id}: {log}")
        if wf_id in failed_entries:
            report.compensation_errors.append(f"{wf_id}: a compensation failed")


def _pid_of(worker: str | None) -> int | None:
    tail = (worker or "").rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def _check_recovery(
    report: ChaosReport, rows: dict[str, list[asyncpg.Record]], faults: list[Fault]
) -> None:
    claims = {r[0]: (r[1], r[2]) for r in rows["run_claims"]}
    detections = rows["crash_audit"]
    report.crash_detections = len(detections)
    per_run = Counter(r[3] for r in detections)
    for (run_id, attempt), count in Counter((r[3], r[5]) for r in detections).items():
        if count > 1:  # an attempt is lost once: two rows mean two sweeps acted on it
            report.duplicate_detections.append(f"run {run_id} attempt {attempt}: x{count}")
    for wf_id, recorded_at, worker, run_id, _action, _attempt in detections:
        pid = _pid_of(worker)
        fault = next(
            (f for f in reversed(faults) if f.at <= recorded_at and (not f.pids or pid in f.pids)),
            None,
        )
        if fault is None:
            report.unexplained_detections.append(f"{wf_id} run {run_id} of {worker}")
            continue
        report.detect_latency.append((recorded_at - fault.at).total_seconds())
        started_at, _attempt = claims.get(run_id, (None, 0))
        if per_run[run_id] == 1 and started_at is not None and started_at >= recorded_at:
            report.reclaim_latency.append((started_at - fault.at).total_seconds())

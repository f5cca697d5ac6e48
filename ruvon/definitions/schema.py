"""The shape of workflow files: pydantic models validated at load time.

Keys follow the Ruvon documentation; where the documentation uses two spellings, both are
accepted (``initial_state_model`` / ``initial_state_model_path``, ``saga_mode`` /
``saga_enabled``, ``target`` / ``next_step`` in routes, ``function`` / ``function_path`` in
PARALLEL tasks). Unknown keys are rejected so a typo never silently does nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from ruvon.merge import MergeConflictBehavior, MergeStrategy
from ruvon.models import StepType

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RetryPolicy(BaseModel):
    """How often and how patiently a failing step is tried again."""

    model_config = _STRICT

    max_attempts: int = Field(default=1, ge=1, le=100)
    initial_interval: float = Field(
        default=0.1,
        ge=0,
        validation_alias=AliasChoices(
            "initial_interval", "initial_interval_seconds", "delay_seconds"
        ),
    )
    backoff: float = Field(
        default=2.0, ge=1.0, validation_alias=AliasChoices("backoff", "backoff_multiplier")
    )
    max_interval: float = Field(
        default=30.0, ge=0, validation_alias=AliasChoices("max_interval", "max_interval_seconds")
    )
    jitter: bool = True
    non_retryable: tuple[str, ...] = Field(
        default=(), validation_alias=AliasChoices("non_retryable", "non_retryable_errors")
    )

    def delay_before(self, attempt: int) -> float:
        """Backoff (without jitter) before ``attempt`` (2 = first retry)."""
        return float(min(self.max_interval, self.initial_interval * self.backoff ** (attempt - 2)))


class Route(BaseModel):
    """One DECISION route: ``condition`` + ``target``, or a bare ``default`` target."""

    model_config = _STRICT

    condition: str | None = None
    target: str | None = Field(default=None, validation_alias=AliasChoices("target", "next_step"))
    default: str | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> Route:
        if self.default is not None:
            if self.condition is not None or self.target is not None:
                raise ValueError("a route is either {default: STEP} or {condition, target}")
        elif self.condition is None or self.target is None:
            raise ValueError("a route needs both 'condition' and 'target' (or only 'default')")
        return self

    @property
    def destination(self) -> str:
        """The step this route leads to."""
        return self.default if self.default is not None else str(self.target)


class ParallelTask(BaseModel):
    """A static PARALLEL branch."""

    model_config = _STRICT

    name: str
    function: str = Field(validation_alias=AliasChoices("function", "function_path"))
    timeout: float | None = Field(default=None, gt=0)


class HttpConfig(BaseModel):
    """Request template of an HTTP step; strings are Jinja templates over state."""

    model_config = _STRICT

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "GET"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    query_params: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    timeout: float = Field(default=30.0, gt=0)
    retry_policy: RetryPolicy | None = None

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class LoopMode(StrEnum):
    ITERATE = "ITERATE"
    WHILE = "WHILE"


class TimeoutAction(StrEnum):
    """What a missed deadline means: HUMAN_APPROVAL takes the first three, WAIT_FOR_EVENT
    ``fail``, ``continue`` (as if the event came with ``timeout_data``) and ``skip``."""

    AUTO_APPROVE = "auto_approve"
    AUTO_REJECT = "auto_reject"
    FAIL = "fail"
    CONTINUE = "continue"
    SKIP = "skip"


HttpPart = Literal["status_code", "headers", "body"]
HTTP_PARTS: tuple[HttpPart, ...] = ("status_code", "headers", "body")


def _upper_enum(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _lower_enum(value: Any) -> Any:
    if isinstance(value, str):
        value = value.lower()
        return "prefer_existing" if value == "prefer_old" else value
    return value


class ConcurrencySpec(BaseModel):
    """``concurrency``: at most ``limit`` holders of one key at a time, cluster-wide; the rest
    wait, in priority then arrival order, and go on as slots free (ruvon.engine.admission).

    On a workflow a slot is held from its first step until it ends; on a step, while the
    step's function runs (each PARALLEL branch holds its own).
    """

    model_config = _STRICT

    # A template over the workflow (``{{ state.customer_id }}``), rendered when the slot is taken.
    key: str = Field(min_length=1)
    limit: int = Field(ge=1, le=1_000_000, strict=True)


class RateLimitSpec(BaseModel):
    """``rate_limit``: at most ``burst`` calls at once and ``per_second`` on average per key,
    cluster-wide (a generic cell rate algorithm with reservations): a call over the limit is
    deferred to its turn, never failed and never polled for."""

    model_config = _STRICT

    # A template like concurrency's key; calls with the same rendered key share one limit.
    key: str = Field(min_length=1)
    per_second: float = Field(gt=0, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=1_000_000, strict=True)


#: The step kinds that call a function, so a step-level ``concurrency`` or ``rate_limit`` has
#: calls to gate (a LOOP's body steps carry their own).
GATED_STEP_TYPES = frozenset(
    {
        StepType.STANDARD,
        StepType.COMPENSATABLE,
        StepType.DECISION,
        StepType.ASYNC,
        StepType.PARALLEL,
        StepType.HTTP,
        StepType.HUMAN_IN_LOOP,
    }
)


class StepDefinition(BaseModel):
    """One step of a workflow file, every step type's keys in one flat model."""

    model_config = _STRICT

    name: str = Field(min_length=1)
    type: StepType = StepType.STANDARD
    description: str | None = None
    function: str | None = None
    compensate_function: str | None = None
    input_model: str | None = None
    required_input: tuple[str, ...] = ()
    automate_next: bool = False
    dependencies: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()
    merge_strategy: MergeStrategy = MergeStrategy.SHALLOW
    merge_conflict_behavior: MergeConflictBehavior = MergeConflictBehavior.PREFER_NEW
    retry: RetryPolicy | None = None
    timeout: float | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("timeout", "timeout_seconds")
    )
    queue: str | None = None
    concurrency: ConcurrencySpec | None = None
    rate_limit: RateLimitSpec | None = None
    max_iterations: int | None = Field(default=None, ge=1)
    # PARALLEL
    tasks: tuple[ParallelTask, ...] = ()
    iterate_over: str | None = None
    task_function: str | None = None
    item_var_name: str = "item"
    batch_size: int = Field(default=0, ge=0)
    allow_partial_success: bool = False
    merge_function_path: str | None = None
    # LOOP
    mode: LoopMode | None = None
    while_condition: str | None = None
    loop_body: tuple[StepDefinition, ...] = ()
    # HTTP
    http_config: HttpConfig | None = None
    output_key: str | None = None
    includes: tuple[HttpPart, ...] = HTTP_PARTS
    # SUB_WORKFLOW, FIRE_AND_FORGET, CRON_SCHEDULE
    target_workflow_type: str | None = Field(
        default=None,
        validation_alias=AliasChoices("target_workflow_type", "sub_workflow_type", "workflow_type"),
    )
    initial_data_template: dict[str, Any] = Field(default_factory=dict)
    schedule_name: str | None = None
    cron_expression: str | None = Field(
        default=None, validation_alias=AliasChoices("cron_expression", "cron", "schedule")
    )
    # WAIT
    wait_seconds: float | None = Field(
        default=None, ge=0, validation_alias=AliasChoices("wait_seconds", "duration_seconds")
    )
    wait_until: str | None = None
    # HUMAN_APPROVAL
    approval_timeout: float | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("approval_timeout", "approval_timeout_seconds"),
    )
    on_timeout: TimeoutAction = TimeoutAction.FAIL
    # Steps inserted after this one when a rule matches the state it leaves behind.
    dynamic_injection: DynamicInjection | None = None
    # Set by the loader on each inserted step (never written in YAML): which rule inserts it.
    injected_by: InjectionOrigin | None = None
    # WAIT_FOR_EVENT (its deadline is `timeout`; on_timeout as above)
    event: str | None = Field(default=None, min_length=1)
    timeout_data: dict[str, Any] | None = None

    _upper_type = field_validator("type", "mode", mode="before")(_upper_enum)
    _lower_merge = field_validator("merge_strategy", "merge_conflict_behavior", mode="before")(
        _lower_enum
    )


_NOT_GIVEN = "\x00not given"


class InjectionRule(BaseModel):
    """One ``dynamic_injection`` rule: when the state at ``condition_key`` matches, the steps
    in ``steps_to_insert`` run right after the step (``INSERT_AFTER_CURRENT``)."""

    model_config = _STRICT

    condition_key: str = Field(min_length=1, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    # A default no YAML value equals, so ``value_match: null`` (match an absent key) survives
    # the snapshot's exclude_defaults dump.
    value_match: Any = _NOT_GIVEN
    value_is_not: tuple[Any, ...] | None = None
    action: Literal["INSERT_AFTER_CURRENT"]
    steps_to_insert: tuple[StepDefinition, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_test(self) -> InjectionRule:
        given = (self.value_match != _NOT_GIVEN) + (self.value_is_not is not None)
        if given != 1:
            raise ValueError("a rule needs exactly one of 'value_match' and 'value_is_not'")
        return self

    def matches(self, value: Any) -> bool:
        """Whether the value found at ``condition_key`` (None when absent) triggers the rule."""
        if self.value_match != _NOT_GIVEN:
            return bool(value == self.value_match)
        return value not in (self.value_is_not or ())


class DynamicInjection(BaseModel):
    """A step's ``dynamic_injection``: its rules, each tried when the step completes."""

    model_config = _STRICT

    rules: tuple[InjectionRule, ...] = Field(min_length=1)


class InjectionOrigin(BaseModel):
    """On an inserted step: the step and rule (0-based) that insert it."""

    model_config = _STRICT

    step: str
    rule: int = Field(ge=0)

    @property
    def key(self) -> str:
        """How the workflow's runtime records that this rule matched."""
        return f"{self.step}#{self.rule}"


class WorkflowFile(BaseModel):
    """A workflow file's top level."""

    model_config = _STRICT

    workflow_type: str = Field(min_length=1)
    workflow_version: str | None = Field(
        default=None, validation_alias=AliasChoices("workflow_version", "version")
    )
    description: str | None = None
    initial_state_model_path: str | None = Field(
        default=None,
        validation_alias=AliasChoices("initial_state_model_path", "initial_state_model"),
    )
    saga_mode: bool = Field(
        default=False, validation_alias=AliasChoices("saga_mode", "saga_enabled")
    )
    automate_start: bool = False
    # The default priority of its workflows, 0 (lowest) to 9 (served first): ruvon.priority.
    priority: int | None = Field(default=None, ge=0, le=9, strict=True)
    # Seconds from the start to the workflow's deadline: past it, an unfinished workflow fails
    # (WorkflowTimeoutError), compensating first under saga mode.
    timeout: float | None = Field(
        default=None, gt=0, validation_alias=AliasChoices("timeout", "timeout_seconds")
    )
    # At most ``limit`` workflows of this type per rendered key run at once; the rest wait.
    concurrency: ConcurrencySpec | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    steps: tuple[StepDefinition, ...] = Field(min_length=1)

    @field_validator("workflow_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | float) else value


class RegistryEntry(BaseModel):
    """One workflow type in ``workflow_registry.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    type: str = Field(min_length=1)
    config_file: str
    description: str | None = None
    initial_state_model_path: str | None = Field(
        default=None,
        validation_alias=AliasChoices("initial_state_model_path", "initial_state_model"),
    )
    requires: tuple[str, ...] = ()
    schedule: str | dict[str, Any] | float | None = None


class QueueRateLimit(BaseModel):
    """A queue's ``rate_limit``: its steps' calls, all keys together (the queue is the key)."""

    model_config = _STRICT

    per_second: float = Field(gt=0, le=1_000_000)
    burst: int = Field(default=1, ge=1, le=1_000_000, strict=True)


class QueueLimits(BaseModel):
    """``queues: {<name>: ...}`` in the registry: limits over every step whose ``queue`` is
    that name, whichever workflow it belongs to, embedded and cluster-wide alike."""

    model_config = _STRICT

    max_concurrency: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    rate_limit: QueueRateLimit | None = None


class RegistryFile(BaseModel):
    """``workflow_registry.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflows: tuple[RegistryEntry, ...] = ()
    requires: tuple[str, ...] = ()
    queues: dict[str, QueueLimits] = Field(default_factory=dict)


StepDefinition.model_rebuild()

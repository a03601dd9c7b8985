"""The tool contract shared by every kind: connect/close, status(), run(recipe) -> result, abort().

Vocabulary is SEMI E30's processing state (IDLE, SETUP, EXECUTING, PAUSE, ...) plus the outcome of
the tool's last job, which the sequencer's crash recovery asks for. A kind is declared, not coded:
its recipe model, result model, interlock inputs and process values (see drivers/kinds/).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.channel import Channel
from drivers.errors import (
    CommandRejected,
    JobAborted,
    ProfileError,
    ProtocolError,
    ToolAlarm,
    ToolError,
    ToolTimeout,
)
from drivers.judgement import Band, ResultCheck
from drivers.profiles.base import AlarmClass, Value

_JOB_IDS = random.Random(secrets.randbits(64))  # seeded from the OS per process: ids differ across restarts


def new_job_id() -> int:
    """A random positive 31-bit id: fits every profile's job register (uint32 / int). Unique enough
    that a restarted controller never reuses the id a tool last ran (recovery compares them)."""
    while True:  # getrandbits: a fifth of randrange's cost, on the path from one job to the next
        job = _JOB_IDS.getrandbits(31)
        if 0 < job < 2**31 - 1:
            return job


class ProcessState(StrEnum):
    INIT = "INIT"
    IDLE = "IDLE"
    SETUP = "SETUP"
    READY = "READY"
    EXECUTING = "EXECUTING"
    PAUSE = "PAUSE"


class JobOutcome(StrEnum):
    NONE = "NONE"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"


# boot_id: the tool's boot (power-on / session) identity. A tool that restarted forgot what it was
# sent, so recovery may only judge "never started" from a tool whose boot id is still the journaled one.
CONTRACT_VARIABLES = ("state", "alarm_id", "job_id", "job_outcome", "boot_id")
# Interlock inputs every kind treats as safety inputs (a profile may add more): their loss mid-job
# aborts, and no role can bypass them.
SAFETY_INPUTS = ("door_closed", "emo_ok")
CONTRACT_COMMANDS = ("start", "abort", "reset")


class Recipe(BaseModel):
    """Base of every kind's recipe: setpoints with units in the field names and ranges as bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def max_duration_s(self) -> float:
        """Generous upper bound of the job in tool seconds; the driver's job deadline."""
        raise NotImplementedError

    def setpoints(self) -> dict[str, Value]:
        return self.model_dump(mode="json")


class Result(BaseModel):
    """What the tool measured for one job."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tool: str
    job_id: int


class Alarm(BaseModel):
    model_config = ConfigDict(frozen=True)
    id: int
    text: str
    alarm_class: AlarmClass = "process"  # from the profile: safety aborts, process holds, warning informs

    @property
    def safety(self) -> bool:
        return self.alarm_class == "safety"


class ToolStatus(BaseModel):
    model_config = ConfigDict(frozen=True)
    tool: str
    kind: str
    state: ProcessState
    alarm: Alarm | None = None
    interlocks: dict[str, bool] = Field(default_factory=dict)
    values: dict[str, Value] = Field(default_factory=dict)
    job_id: int = 0
    job_outcome: JobOutcome = JobOutcome.NONE
    boot_id: int = 0  # 0: the tool does not say (older status records)
    safety_inputs: tuple[str, ...] = ()  # which of `interlocks` are safety inputs (kind + profile)

    def unsafe_inputs(self) -> list[str]:
        """Safety inputs that are not made now (door open, EMO pressed, ...)."""
        return [n for n in self.safety_inputs if self.interlocks.get(n) is False]

    @property
    def ready(self) -> bool:
        """Idle, no alarm, every interlock input healthy."""
        return (
            self.state is ProcessState.IDLE
            and self.alarm is None
            and all(self.interlocks.values())
        )


R = TypeVar("R", bound=Recipe)
S = TypeVar("S", bound=Result)
Monitor = Callable[[ToolStatus], Awaitable[None]]
TERMINAL = (JobOutcome.COMPLETED, JobOutcome.ABORTED, JobOutcome.FAILED)


class Tool(Generic[R, S]):
    """Facade over one channel. Subclasses only declare class attributes."""

    kind: ClassVar[str]
    recipe_model: ClassVar[type[Recipe]]
    result_model: ClassVar[type[Result]]
    interlock_inputs: ClassVar[tuple[str, ...]]
    process_values: ClassVar[tuple[str, ...]] = ()
    run_bands: ClassVar[tuple[Band, ...]] = ()  # watched on every poll of a running job
    # the changes to a wafer stack a job of this kind can make (flow effects: bond, layer, dice, ...)
    stack_actions: ClassVar[frozenset[str]] = frozenset()
    result_checks: ClassVar[tuple[ResultCheck, ...]] = ()  # judged when a job completed

    def __init__(
        self,
        name: str,
        channel: Channel,
        *,
        time_scale: float = 1.0,
        poll_interval_s: float = 0.25,
    ) -> None:
        self.name = name
        self.channel = channel
        self.time_scale = time_scale
        self.poll_interval_s = poll_interval_s
        self._status_names = list(
            dict.fromkeys([*CONTRACT_VARIABLES, *self.interlock_inputs, *self.process_values])
        )
        self._result_names = list(self.result_variables())
        extra = [n for n in channel.profile.safety_inputs if n not in self.interlock_inputs]
        if extra:
            raise ProfileError(f"{name}: safety_inputs {extra} are not interlock inputs of a {self.kind} "
                               f"(those are {list(self.interlock_inputs)})")
        self.safety_inputs = tuple(dict.fromkeys(
            [*(n for n in SAFETY_INPUTS if n in self.interlock_inputs), *channel.profile.safety_inputs]))
        self._last: tuple[float, ToolStatus] | None = None  # (monotonic s, status) of the last read
        self.polls = 0  # status polls made while waiting for jobs (diagnostics, benchmarks)

    @classmethod
    def result_variables(cls) -> tuple[str, ...]:
        return tuple(f for f in cls.result_model.model_fields if f not in ("tool", "job_id"))

    @classmethod
    def required_variables(cls) -> set[str]:
        return {
            *CONTRACT_VARIABLES,
            *cls.interlock_inputs,
            *cls.process_values,
            *cls.recipe_model.model_fields,
            *cls.result_variables(),
        }

    @classmethod
    def required_commands(cls) -> set[str]:
        return set(CONTRACT_COMMANDS)

    # --- lifecycle ---------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.channel.connect()

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> Tool[R, S]:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- the contract ------------------------------------------------------------------------
    async def status(self) -> ToolStatus:
        status = self._to_status(await self.channel.read(self._status_names))
        self._last = (time.monotonic(), status)
        return status

    def recent_status(self, max_age_s: float | None = None) -> ToolStatus | None:
        """The last status read if it is younger than `max_age_s` (default: one poll interval, at
        least 50 ms), else None. A status that fresh is as current as any poll of a running job:
        a sequencer may judge the next job's permissives on the poll that saw the last job end
        instead of spending another round trip; the tool still refuses a start it cannot take."""
        age = max(self.poll_interval_s, 0.05) if max_age_s is None else max_age_s
        if self._last is None or time.monotonic() - self._last[0] > age:
            return None
        return self._last[1]

    async def run(self, recipe: R, *, job_id: int | None = None, monitor: Monitor | None = None) -> S:
        """Start the recipe and wait for the job to end; return the tool's measurements.

        Raises CommandRejected if the tool refuses, ToolAlarm if it alarms, JobAborted if the job
        ends aborted, ToolTimeout past the recipe's deadline. `monitor` sees every polled status,
        so a caller can watch run interlocks and call abort().
        """
        job = await self.start(recipe, job_id=job_id)
        return await self.wait(job, recipe, monitor=monitor)

    async def start(self, recipe: R, *, job_id: int | None = None, checked: ToolStatus | None = None) -> int:
        """Check the tool is idle without alarm, send the start; return the job id.

        `checked`: a status the caller has just read and judged (its permissives); it spares a round
        trip. Without it the tool is asked first."""
        if not isinstance(recipe, self.recipe_model):
            raise TypeError(f"{self.kind} needs a {self.recipe_model.__name__}")
        job = job_id if job_id is not None else new_job_id()
        before = checked if checked is not None else await self.status()
        if before.alarm is not None:
            raise ToolAlarm(self.name, before.alarm.id, before.alarm.text)
        if before.state is not ProcessState.IDLE:
            raise CommandRejected(self.name, f"tool is {before.state}, not IDLE")
        try:
            await self.channel.command("start", {"job_id": job, **recipe.setpoints()})
        except CommandRejected as exc:
            raise CommandRejected(self.name, await self._why_refused("start", exc.reason)) from exc
        return job

    async def _why_refused(self, command: str, answer: str) -> str:
        """A tool's refusal in an operator's words: the tool is asked why (alarm, open interlock, busy);
        the wire answer (a Modbus exception code, an ERR line) follows in brackets."""
        try:
            st = await self.status()
        except ToolError:
            return f"{self.name} refused {command} ({answer}); its status could not be read to say why"
        reasons = [f"{n} is not made" for n, ok in st.interlocks.items() if not ok]
        if st.alarm is not None:
            reasons.append(f"alarm {st.alarm.id} is active: {st.alarm.text}")
        if st.state is not ProcessState.IDLE:
            reasons.append(f"it is {st.state}, not IDLE")
        why = "; ".join(reasons) or "the tool gave no reason it shows in its status"
        return f"{self.name} refused {command}: {why} (tool answered: {answer})"

    async def wait(self, job_id: int, recipe: R, *, monitor: Monitor | None = None) -> S:
        """Wait for a started job to end (also after a controller restart); return its result."""
        final = await self._wait_for_job(job_id, recipe.max_duration_s(), monitor)
        if final.job_outcome is JobOutcome.ABORTED:
            raise JobAborted(self.name, f"job {job_id} aborted")
        if final.job_outcome is JobOutcome.FAILED:
            alarm = final.alarm or Alarm(id=0, text="job failed without an alarm")
            raise ToolAlarm(self.name, alarm.id, alarm.text)
        return await self.job_result(job_id)

    async def job_result(self, job_id: int) -> S:
        values = await self.channel.read(self._result_names)
        return self.result_model(tool=self.name, job_id=job_id, **values)  # type: ignore[return-value]

    async def abort(self) -> None:
        await self._command("abort")

    async def reset(self) -> None:
        """Clear latched alarms (SEMI E30 alarm clear); the tool refuses if the cause persists."""
        await self._command("reset")

    async def _command(self, name: str) -> None:
        try:
            await self.channel.command(name, {})
        except CommandRejected as exc:
            raise CommandRejected(self.name, await self._why_refused(name, exc.reason)) from exc

    # --- internals ---------------------------------------------------------------------------
    async def _wait_for_job(self, job: int, max_tool_s: float, monitor: Monitor | None) -> ToolStatus:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_tool_s / self.time_scale + self.channel.timeouts.request_s
        while True:
            seen = self.channel.generation
            st = await self.status()
            self.polls += 1
            if monitor is not None:
                await monitor(st)
            if st.job_id == job:
                if st.job_outcome in TERMINAL:
                    return st
                if st.alarm is not None:
                    raise ToolAlarm(self.name, st.alarm.id, st.alarm.text)
            if loop.time() > deadline:
                raise ToolTimeout(
                    self.name,
                    f"job {job} still {st.state}/{st.job_outcome} after {max_tool_s:g} tool s",
                )
            await self.channel.wait_change(seen, self.poll_interval_s)

    def _to_status(self, raw: dict[str, Value]) -> ToolStatus:
        try:
            alarm_id = int(raw["alarm_id"])
            profile = self.channel.profile
            alarm = (
                Alarm(id=alarm_id, text=profile.alarm_text(alarm_id),
                      alarm_class=profile.alarm_class(alarm_id))
                if alarm_id
                else None
            )
            return ToolStatus(
                tool=self.name,
                kind=self.kind,
                state=ProcessState(str(raw["state"])),
                alarm=alarm,
                interlocks={n: bool(raw[n]) for n in self.interlock_inputs},
                values={n: raw[n] for n in self.process_values},
                job_id=int(raw["job_id"]),
                job_outcome=JobOutcome(str(raw["job_outcome"])),
                boot_id=int(raw["boot_id"]),
                safety_inputs=self.safety_inputs,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise ProtocolError(self.name, f"status does not fit the contract: {exc}") from exc

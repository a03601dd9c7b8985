"""One emulated tool: E30 state machine, alarms, interlock inputs and a job running its physics plan.

Protocol servers call `read()` and `command()` - the same neutral interface a driver channel
offers - so every transport front end shares one behaviour. State changes notify listeners
(the MQTT server publishes retained status on them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from drivers.kinds import KINDS
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultKind, FaultSet
from sim_tools.physics.base import Phase, Physics, Plan

log = logging.getLogger(__name__)

ALARM_DOOR = 10
ALARM_EMO = 11
ALARM_INTERLOCK = 12
ALARM_TEXTS = {
    ALARM_DOOR: "door opened during process",
    ALARM_EMO: "emergency off pressed",
    ALARM_INTERLOCK: "interlock input lost during process",
}


def drift_variable(physics: Physics) -> str | None:
    """The sensor a DRIFT fault walks off: the physics' own choice, else the variable of the kind's
    first run-interlock band (the one a controller watches), else the first process value."""
    if physics.drift_variable is not None:
        return physics.drift_variable
    kind = KINDS.get(physics.kind)
    return kind.run_bands[0].variable if kind is not None and kind.run_bands else None


class Refused(Exception):
    """The tool refuses a command; `code` and `text` go on the wire (Modbus exception, ERR line)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True)
class AlarmEvent:
    tool_time_s: float
    alarm_id: int
    set: bool  # True: alarm set; False: cleared


class EmulatedTool:
    def __init__(
        self,
        name: str,
        physics: Physics,
        clock: VirtualClock,
        faults: FaultSet | None = None,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.physics = physics
        self.clock = clock
        self.faults = faults or FaultSet(seed=seed)
        self.rng = random.Random(seed)
        self.state = "IDLE"
        self._alarm_id = 0
        self.alarm_events: list[AlarmEvent] = []  # SEMI E30 alarm reports: set and clear, in order
        self.job_id = 0
        self.job_outcome = "NONE"
        self.interlocks: dict[str, bool] = {n: True for n in physics.interlocks}
        self.setpoints: dict[str, Value] = {}
        self.results: dict[str, Value] = physics.initial_results()
        self._plan: Plan | None = None
        self._job_t0 = 0.0
        self._phase: Phase | None = None
        self._phase_t0 = 0.0
        self._drift: tuple[float, float, float] | None = None  # magnitude, start, ramp (tool s)
        self._job: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self.job_log: list[int] = []  # every job id this tool accepted, in order (exactly-once audits)
        self.job_outcomes: dict[int, str] = {}  # the ledger: each job's outcome (RUNNING until it ends)
        # starts the controller sent against an interlock that was already open (or an alarm already set)
        # when the tool last reported its status: it could have known. The tool refuses them, but a
        # controller that respects its permissives never sends one (campaign audits). A start racing an
        # opening the controller had not been shown yet is `raced` instead: the tool's refusal is the
        # layer that catches it.
        self.violations: list[str] = []
        self.raced: list[str] = []
        self._reported_at = -1.0  # monotonic time of the last status read served
        self._changed_at: dict[str, float] = {}  # interlock or "alarm" -> monotonic time it went bad
        self._drift_variable = drift_variable(physics)
        # a new identity every power-on, whatever the seed: a restarted tool must not pass for the old one
        self.boot_id = secrets.randbits(31) | 1

    @property
    def alarm_id(self) -> int:
        return self._alarm_id

    @alarm_id.setter
    def alarm_id(self, value: int) -> None:
        """Every change is an alarm report: the old alarm clears, the new one sets."""
        if value == self._alarm_id:
            return
        if value and not self._alarm_id:
            self._went_bad("alarm")
        now = self.clock.now()
        if self._alarm_id:
            self.alarm_events.append(AlarmEvent(now, self._alarm_id, False))
        if value:
            self.alarm_events.append(AlarmEvent(now, value, True))
        self._alarm_id = value

    # --- neutral interface used by the protocol servers ----------------------------------------
    def read(self, names: Sequence[str]) -> dict[str, Value]:
        if "alarm_id" in names or any(n in self.interlocks for n in names):
            self._reported_at = time.monotonic()
        snap = self.snapshot()
        return {n: snap[n] for n in names}

    def snapshot(self) -> dict[str, Value]:
        values: dict[str, Value] = {
            "state": self.state,
            "alarm_id": self.alarm_id,
            "job_id": self.job_id,
            "job_outcome": self.job_outcome,
            "boot_id": self.boot_id,
            **self.interlocks,
            **self._setpoint_view(),
            **self.results,
        }
        values.update(self._process_values())
        return values

    def command(self, name: str, args: Mapping[str, Value]) -> None:
        handler = {"start": self._start, "abort": self._abort, "reset": self._reset}.get(name)
        if handler is None:
            raise Refused(2, f"unknown command {name}")
        handler(args)

    def add_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    async def wait_until(self, predicate: Callable[[EmulatedTool], bool]) -> None:
        """Wait for a state change that satisfies `predicate` (bound it with asyncio.timeout)."""
        event = asyncio.Event()

        def check() -> None:
            if predicate(self):
                event.set()

        self.add_listener(check)
        try:
            if not predicate(self):
                await event.wait()
        finally:
            self.remove_listener(check)

    # --- hooks for tests, fault injection and the operator -------------------------------------
    def set_interlock(self, name: str, healthy: bool) -> None:
        """Change an interlock input; losing one mid-job stops the job (tool safety logic)."""
        if name not in self.interlocks:
            raise KeyError(f"{self.name} has no interlock input {name!r}")
        if not healthy and self.interlocks[name]:
            self._went_bad(name)
        self.interlocks[name] = healthy
        if not healthy and self._job is not None:
            alarm = {"door_closed": ALARM_DOOR, "emo_ok": ALARM_EMO}.get(name, ALARM_INTERLOCK)
            self._stop_job("ABORTED", alarm)
        self._notify()

    def raise_alarm(self, alarm_id: int) -> None:
        """A process alarm: a running job pauses (E30 PAUSE) and waits for abort."""
        self.alarm_id = alarm_id
        if self._job is not None:
            self.state = "PAUSE"
        self._notify()

    async def wait_progress(self, fraction: float) -> None:
        """Wait until a running job is `fraction` through its plan, in tool time (bound it with
        asyncio.timeout): a condition on the tool's own clock instead of a wall-clock sleep."""
        await self.wait_until(lambda t: t._plan is not None)
        assert self._plan is not None
        await self.clock.sleep_until(self._job_t0 + fraction * self._plan.duration_s)

    def power_cycle(self) -> None:
        """The tool loses power and boots again: its job is gone, it forgot what it was sent, and it
        comes back IDLE with a new boot id (what a controller's recovery must notice)."""
        job, self._job = self._job, None
        if job is not None:
            job.cancel()
            self.job_outcomes[self.job_id] = "POWER_LOST"
        self.boot_id = secrets.randbits(31) | 1
        self.job_id, self.job_outcome, self._alarm_id = 0, "NONE", 0
        self._plan = self._phase = self._drift = None
        self.setpoints = {}
        self.state = "IDLE"
        self._notify()

    async def close(self) -> None:
        if self._job is not None:
            self._job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._job
            self._job = None

    # --- commands ------------------------------------------------------------------------------
    def _start(self, args: Mapping[str, Value]) -> None:
        self._audit_start(args)
        if self.state != "IDLE" or self._job is not None:
            raise Refused(1, f"busy: state {self.state}")
        if self.alarm_id:
            raise Refused(3, f"alarm {self.alarm_id} active; reset first")
        for name, healthy in self.interlocks.items():
            if not healthy:
                raise Refused(4, f"interlock {name} not made")
        job_id = int(args.get("job_id", 0))
        if job_id <= 0:
            raise Refused(5, "job_id must be a positive integer")
        fields = {k: v for k, v in args.items() if k != "job_id"}
        try:
            recipe = self.physics.recipe_model.model_validate(fields)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])  # empty for cross-field checks
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise Refused(6, f"recipe {where}: {msg}" if where else f"recipe: {msg}") from None
        plan = self.physics.plan(recipe, self.rng)
        if (spec := self.faults.fires(FaultKind.OFF_TARGET)) is not None:
            plan.results = {
                k: (v * (1 + spec.magnitude) if isinstance(v, float) else v)
                for k, v in plan.results.items()
            }
        self.setpoints = dict(fields)
        self.job_id = job_id
        self.job_outcome = "RUNNING"
        self.job_log.append(job_id)
        self.job_outcomes[job_id] = "RUNNING"
        self._plan, self._job_t0 = plan, self.clock.now()
        self.state = plan.phases[0].state
        self._job = asyncio.get_running_loop().create_task(self._execute(plan))
        log.info("%s: job %d started (%.0f tool s)", self.name, job_id, plan.duration_s)

    def _audit_start(self, args: Mapping[str, Value]) -> None:
        bad = [n for n, ok in self.interlocks.items() if not ok] + (["alarm"] if self.alarm_id else [])
        if not bad:
            return
        shown = [n for n in bad if self._changed_at.get(n, -1.0) <= self._reported_at]
        name = (shown or bad)[0]
        why = f"alarm {self.alarm_id} set" if name == "alarm" else f"interlock {name} not made"
        (self.violations if shown else self.raced).append(f"start of job {args.get('job_id')} with {why}")

    def _went_bad(self, name: str) -> None:
        self._changed_at[name] = time.monotonic()

    def _abort(self, _args: Mapping[str, Value]) -> None:
        if self._job is None:
            return  # aborting an idle tool is a no-op, as on real tools
        self._stop_job("ABORTED", None)

    def _reset(self, _args: Mapping[str, Value]) -> None:
        bad = [n for n, ok in self.interlocks.items() if not ok]
        if bad:
            raise Refused(4, f"cannot clear alarm: interlock {bad[0]} not made")
        if self._job is not None and self.state == "PAUSE":
            self._stop_job("FAILED", self.alarm_id)
        self.alarm_id = 0
        self._notify()

    # --- the job -------------------------------------------------------------------------------
    async def _execute(self, plan: Plan) -> None:
        t_start = self.clock.now()
        fault_at = None
        fault = None
        for kind in (FaultKind.ALARM, FaultKind.DOOR_OPEN, FaultKind.STUCK_BUSY):
            if (spec := self.faults.fires(kind)) is not None:
                fault, fault_at = spec, t_start + spec.at_fraction * plan.duration_s
                break
        if (drift := self.faults.fires(FaultKind.DRIFT)) is not None:
            # the sensor walks off by `magnitude` (relative) over a tenth of the job, then stays off
            self._drift = (drift.magnitude, t_start + drift.at_fraction * plan.duration_s,
                           max(plan.duration_s / 10, 1e-9))
        for phase in plan.phases:
            self._phase, self._phase_t0 = phase, self.clock.now()
            self.state = phase.state
            self._notify()
            end = self._phase_t0 + phase.duration_s
            if fault is not None and fault_at is not None and fault_at < end:
                await self.clock.sleep_until(fault_at)
                await self._inject(fault.kind, fault.alarm_id)
                return
            await self.clock.sleep_until(end)
        self.results = plan.results
        self._finish("COMPLETED")

    async def _inject(self, kind: FaultKind, alarm_id: int) -> None:
        log.info("%s: injecting %s", self.name, kind)
        if kind is FaultKind.DOOR_OPEN:
            self._job = None  # the door logic below ends the job itself
            self._went_bad("door_closed")
            self.interlocks["door_closed"] = False
            self.alarm_id = ALARM_DOOR
            self._finish("ABORTED")
        elif kind is FaultKind.ALARM:
            self.raise_alarm(alarm_id)
            await asyncio.Event().wait()  # paused until abort/reset cancels us
        else:  # stuck busy: stays EXECUTING forever
            await asyncio.Event().wait()

    def _stop_job(self, outcome: str, alarm: int | None) -> None:
        job, self._job = self._job, None
        if job is not None and job is not asyncio.current_task():
            job.cancel()
        if alarm:
            self.alarm_id = alarm
        if self._plan is not None and self._plan.partial is not None:
            self.results = self._plan.partial(self.clock.now() - self._job_t0)
        self._finish(outcome)

    def _finish(self, outcome: str) -> None:
        self._job = None
        self._drift = None
        self._plan = None
        self._phase = None
        self.state = "IDLE"
        self.job_outcome = outcome
        if self.job_id in self.job_outcomes:
            self.job_outcomes[self.job_id] = outcome
        self._notify()

    def _process_values(self) -> dict[str, Value]:
        if self._phase is None:
            return self.physics.idle_values()
        f = (self.clock.now() - self._phase_t0) / max(self._phase.duration_s, 1e-9)
        values = {**self.physics.idle_values(), **self._phase.values(min(1.0, f))}
        if self._drift is not None:
            magnitude, start, ramp = self._drift
            progress = min(1.0, max(0.0, (self.clock.now() - start) / ramp))
            name = self._drift_variable if self._drift_variable in values else next(iter(values))
            values[name] = float(values[name]) * (1.0 + magnitude * progress)
        return values

    def _setpoint_view(self) -> dict[str, Value]:
        return {**self.physics.default_setpoints(), **self.setpoints}

    def _notify(self) -> None:
        for cb in list(self._listeners):
            try:
                cb()
            except Exception:  # a listener must never break the tool
                log.exception("%s: status listener failed", self.name)

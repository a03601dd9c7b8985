"""Shared fixtures. Transport fixtures live in tests/fixtures/<transport>.py (registered below).

`no_leaked_tasks` (autouse) fails a test that leaves asyncio tasks running: drivers and emulators
must cancel everything they start when closed.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from sequencer.run.roles import ROLES_ENV
from sim_tools.clock import VirtualClock

pytest_plugins = [
    "tests.fixtures.common",
    "tests.fixtures.modbus",
    "tests.fixtures.mqtt",
    "tests.fixtures.serial",
    "tests.fixtures.sequencer",
    "tests.fixtures.hmi",  # after sequencer: it imports it
]

TIME_SCALE = 20000.0
# secsgem (the independent GEM peer) logs its warnings from dispatcher threads, which can outlive the
# test that made them and then write to a capture stream pytest has already closed ("Logging error").
# Its errors still show.
logging.getLogger("secsgem").setLevel(logging.ERROR)


def _secsgem_threads_are_daemons() -> None:
    """secsgem (the test peer) starts non-daemon threads; one stuck in its own shutdown (its server thread
    re-listening on a socket its disable() closed) would keep pytest from exiting after every test passed.
    Its threads become daemons here, in the tests only."""
    import threading
    import types

    import secsgem.common.protocol_dispatcher
    import secsgem.common.tcp_client_connection
    import secsgem.common.tcp_connection
    import secsgem.common.tcp_server_connection
    import secsgem.hsms.protocol

    class DaemonThread(threading.Thread):
        def __init__(self, *args: object, **kwargs: object) -> None:
            kwargs["daemon"] = True
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    names = [n for n in dir(threading) if not n.startswith("__")]
    proxy = types.SimpleNamespace(**{n: getattr(threading, n) for n in names})
    proxy.Thread = DaemonThread
    for module in (secsgem.common.protocol_dispatcher, secsgem.common.tcp_client_connection,
                   secsgem.common.tcp_connection, secsgem.common.tcp_server_connection,
                   secsgem.hsms.protocol):
        module.threading = proxy  # type: ignore[attr-defined]


_secsgem_threads_are_daemons()


@pytest.fixture(scope="session")
def clock() -> VirtualClock:
    return VirtualClock(TIME_SCALE)


def _transient(task: asyncio.Task[object]) -> bool:
    """aiomqtt's `messages` iterator spawns a fresh `Queue.get` task per message, so a consumer owned
    by a module-scoped fixture always has one born during the last test. Ignoring those hides no
    leak: a leaked consumer is still caught through its own long-lived task."""
    return getattr(task.get_coro(), "__qualname__", "") == "Queue.get"


@pytest.fixture(scope="session", autouse=True)
def roles_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's site roles: the user running the tests is a supervisor (tests of refusals point
    WAFERLINE_ROLES at their own file). Set in os.environ, so CLI subprocesses see it too."""
    path = tmp_path_factory.mktemp("roles") / "roles.yaml"
    path.write_text(yaml.safe_dump({"users": {getpass.getuser(): "supervisor"}}))
    path.chmod(0o644)
    os.environ[ROLES_ENV] = str(path)
    return path


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    for _ in range(20):  # let cancellations and closes settle
        leaked = {t for t in asyncio.all_tasks() - before if not t.done() and not _transient(t)}
        leaked.discard(asyncio.current_task())  # type: ignore[arg-type]
        if not leaked:
            return
        await asyncio.sleep(0.01)
    names = sorted(t.get_name() + ":" + repr(t.get_coro()) for t in leaked)
    for t in leaked:
        t.cancel()
    pytest.fail(f"test left {len(leaked)} task(s) running: {names}")

"""The scale benchmark (benchmarks/_scale.py) kept from rotting: the same code at 12 tools for 3 s must
come up in its own emulator process, finish jobs on every transport and count polls, with no error.

A real, separate emulator process is started: the figures are only honest if the controller's
process holds no emulator, so that is what is tested too.
"""

from __future__ import annotations

import os
import resource
from typing import Any

import psutil
import pytest

from benchmarks._scale import format_table, measure_scale
from benchmarks._scale_line import MIX, raise_nofile, transport_counts
from sim_tools.broker import MosquittoBroker

TRANSPORTS = {t for t, _ in MIX}


def check_smoke(r: dict[str, Any]) -> None:
    assert r["tools"] == r["connected"] == 12
    assert r["errors"] == {}, r["errors"]
    assert set(r["per_transport"]) == TRANSPORTS
    for transport, s in r["per_transport"].items():
        assert s["tools"] == transport_counts(12)[transport]
        assert s["jobs"] >= s["tools"], f"{transport}: {s['jobs']} jobs for {s['tools']} tools"
        assert s["polls"] > s["jobs"], f"{transport}: jobs ended without being polled"
        assert 0 < s["rtt_p50_ms"] <= s["rtt_p99_ms"] <= s["rtt_max_ms"]
        assert s["missed"] == s["missed_gap"] + s["missed_error"]
        assert s["missed_error"] == 0  # an errored status read would have failed its job
    assert r["jobs"] == sum(s["jobs"] for s in r["per_transport"].values())
    assert r["polls_per_s"] > 0 and r["status_reads"] >= r["polls"] + r["jobs"]
    assert r["event_loop_lag"]["ticks"] > 0
    assert r["emulator"]["event_loop_lag"]["ticks"] > 0
    emu, ctl = r["emulator"], r["controller"]
    assert emu["pid"] != os.getpid() and not psutil.pid_exists(emu["pid"])  # its own, and stopped
    assert emu["exit_code"] == 0, emu.get("log_tail")
    assert emu["cpu_s"] > 0 and emu["rss_end_mb"] > 0
    assert ctl["rss_end_mb"] >= ctl["rss_before_mb"] > 0 and ctl["cpu_s"] > 0
    assert ctl["fds_end"] >= r["tools"] and emu["fds_end"] >= r["tools"]  # a link per tool, each side
    assert r["nofile"]["controller"]["fits"] and r["nofile"]["emulator_raise"]["fits"]
    assert "modbus_rtu" in format_table(r)


async def test_twelve_tools_amqtt() -> None:
    r = await measure_scale(12, 3.0)
    check_smoke(r)
    assert r["broker"] == "amqtt" and "broker_process" not in r


async def test_twelve_tools_amqtt_in_its_own_process() -> None:
    r = await measure_scale(12, 3.0, broker="amqtt-process")
    check_smoke(r)
    assert r["broker"] == "amqtt-process" and not psutil.pid_exists(r["broker_process"]["pid"])


@pytest.mark.mosquitto
async def test_twelve_tools_mosquitto() -> None:
    if not MosquittoBroker.available():
        pytest.skip("mosquitto binary not installed (CI installs it with apt-get in .ci/run)")
    r = await measure_scale(12, 3.0, broker="mosquitto", poll_interval_s=0.05)
    check_smoke(r)
    assert r["poll_interval_s"] == 0.05
    assert r["broker_process"]["cpu_s"] >= 0 and not psutil.pid_exists(r["broker_process"]["pid"])


def test_nofile_soft_limit_is_raised_to_hard_and_a_shortfall_is_reported() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        pytest.skip(f"needs a finite hard NOFILE limit >= 512, have {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        raised = raise_nofile(300)
        assert (raised["soft"], raised["fits"], raised["note"]) == (hard, True, None)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
        short = raise_nofile(hard + 1)
        assert not short["fits"] and f"< {hard + 1}" in short["note"]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

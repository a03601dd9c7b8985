"""Run reports from real runs on the emulated line: files, pictures, HTML content, accounting sums, CLI.

Every report is written from the run directory alone, as `waferline report` does after the fact.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import shutil
import sqlite3
import struct
from html import escape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.line import LineConfig
from sequencer.reports.accounting import LineAccounting
from sequencer.reports.data import load_run
from sequencer.reports.write import ReportFiles, file_report, write_report
from sequencer.run.control import RunState
from sequencer.run.journal import Journal, JournalError, read_events
from sequencer.run.remote import send_command
from sequencer.run.run import start_run
from sequencer.run.rundir import JOURNAL, SUMMARY, TRAVELER
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from waferline.cli import app

Line = tuple[LineConfig, EmulatedLine]


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def check_pictures(files: ReportFiles, stacks: int) -> None:
    w, h = png_size(files.gantt_png)
    assert 1200 <= w <= 3000 and 250 <= h <= 3000, (w, h)
    assert len(files.travelers) == stacks
    for path in files.travelers.values():
        w, h = png_size(path)
        assert 900 <= w <= 2000 and 250 <= h <= 6000, (path.name, w, h)


def check_sums(acc: LineAccounting) -> None:
    """E10 and E116 each partition the window; utilization is the tool's summed productive job time."""
    window = acc.window.tool
    assert window > 0
    for t in acc.tools:
        assert t.productive.tool + t.standby.tool + t.down.tool == pytest.approx(window, rel=1e-9), t.tool
        assert t.busy.tool + t.idle.tool + t.blocked.tool == pytest.approx(window, rel=1e-9), t.tool
        assert t.busy.tool == pytest.approx(t.productive.tool)
        jobs = sum(j.productive for j in acc.jobs if j.tool == t.tool)
        assert t.productive.tool == pytest.approx(jobs, abs=window * 1e-9), t.tool
        assert t.utilization == pytest.approx(jobs / window)
        assert t.productive.wall == pytest.approx(t.productive.tool / acc.time_scale)


def self_contained(html: str) -> None:
    assert "<script" not in html and 'src="http' not in html and "href=\"http" not in html
    assert html.count("data:image/png;base64,") >= 2


def _newest_in(runs: Path, state: str) -> Path | None:
    """The newest run directory if its journal's last state is `state`."""
    dirs = sorted(p for p in runs.iterdir() if (p / JOURNAL).exists())
    if dirs:
        states = [e.data["to"] for e in read_events(dirs[-1] / JOURNAL) if e.kind == "state"]
        if states and states[-1] == state:
            return dirs[-1]
    return None


async def _wait_for_state(runs: Path, state: str, limit_s: float = 30) -> Path:
    async with asyncio.timeout(limit_s):
        while True:
            found = _newest_in(runs, state)
            if found is not None:
                return found
            await asyncio.sleep(0.02)


async def test_flow_a_report(healthy: Line, runs: Path) -> None:
    config, _ = healthy
    outcome = await start_run("flow-a", config, wafers=2, after=file_report)
    assert outcome.state is RunState.COMPLETE
    files = write_report(outcome.directory)
    assert files.directory == outcome.directory / "report"
    check_pictures(files, 1)
    html = files.index_html.read_text()
    self_contained(html)
    created = read_events(outcome.directory / JOURNAL)[0].data
    for tool in (name for names in created["pools"].values() for name in names):
        assert f"<td>{tool}</td>" in html, tool
    for uid in created["steps"]:
        assert f"<td>{escape(uid)}</td>" in html, uid
    for claim in outcome.claims:
        assert escape(claim.title) in html
    assert "all claims hold" in html and "COMPLETE" in html
    data = load_run(outcome.directory)
    acc = data.accounting
    check_sums(acc)
    assert acc.stacks_completed == [outcome.stack.stack_id] and acc.bottleneck is not None
    neck = next(k for k in acc.kinds if k.kind == acc.bottleneck)
    assert acc.ratio == pytest.approx(neck.utilization)  # every job belongs to the one completed stack
    numbers = json.loads(files.report_json.read_text())
    assert numbers["ratio"] == pytest.approx(acc.ratio) and numbers["state"] == "COMPLETE"
    assert {t["tool"] for t in numbers["accounting"]["tools"]} == {t.tool for t in acc.tools}


async def test_flow_c_report(healthy: Line, runs: Path) -> None:
    config, _ = healthy
    outcome = await start_run("flow-c", config, after=file_report)
    files = write_report(outcome.directory)
    check_pictures(files, 1)
    html = files.index_html.read_text()
    for text in ("first_terminal", "second_terminal", "Pb90Sn10", "first_resin", "grinder1", "C6"):
        assert text in html, text
    claims = html[html.index("<h2>Claims check</h2>"):html.index("<h2>Steps and process jobs</h2>")]
    assert claims.count("<span class='ok'>ok</span>") == len(outcome.claims) == 4
    check_sums(load_run(outcome.directory).accounting)


async def test_refused_permissive_in_history_and_held_report(healthy: Line, runs: Path) -> None:
    config, emulated = healthy
    emulated.tools["mounter1"].set_interlock("n2_ok", False)  # nitrogen off before ball reflow
    task = asyncio.create_task(start_run("flow-a", config, wafers=2, after=file_report))
    run_dir = await _wait_for_state(runs, "HELD")
    held = write_report(run_dir)  # the sequencer still holds the journal open: a report reads it anyway
    data = load_run(run_dir)
    assert data.state == "HELD" and "n2_supply_on" in (data.held_reason or "")
    assert data.accounting.tool("mounter1").blocked.tool > 0
    html = held.index_html.read_text()
    assert "HELD" in html and "No claims check" in html and "n2_ok" in html
    emulated.tools["mounter1"].set_interlock("n2_ok", True)
    assert (await send_command(run_dir, "restart", "alice", "N2 valve opened"))["ok"]
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state is RunState.COMPLETE
    files = write_report(run_dir)
    data = load_run(run_dir)
    rows = [(r.stack, r.step, r.tool, r.interlock, r.who) for r in data.history]
    assert ("S1", "A15", "mounter1", "n2_supply_on", "sequencer") in rows
    assert ("-", "-", "-", "n2_supply_on", "interlock:n2_supply_on") in rows  # the hold it caused
    assert ("-", "-", "-", "-", f"{getpass.getuser()} (alice)") in rows  # the restart, by the OS user
    html = files.index_html.read_text()
    for text in ("permissive refused", "N2 valve opened", "alice", "all claims hold"):
        assert text in html, text
    acc = data.accounting
    refused = [(m.tool, m.stack, m.uid) for m in acc.marks if m.what == "refused"]
    assert refused == [("mounter1", outcome.stack.stack_id, "A15")]
    assert len(acc.holds) == 1 and acc.tool("mounter1").blocked.tool > 0
    check_sums(acc)


async def test_aborted_run_report(healthy: Line, runs: Path) -> None:
    config, emulated = healthy
    emulated.tools["etcher1"].faults.set(FaultSpec(kind=FaultKind.DOOR_OPEN, at_fraction=0.5))
    outcome = await asyncio.wait_for(start_run("flow-a", config, wafers=2, after=file_report), 30)
    assert outcome.state is RunState.ABORTED
    files = write_report(outcome.directory)
    check_pictures(files, 1)
    data = load_run(outcome.directory)
    acc = data.accounting
    assert [j.outcome for j in acc.jobs if j.tool == "etcher1"][-1] == "failed"
    assert acc.tool("etcher1").down.tool > 0 and acc.tool("etcher1").failed_jobs == 1
    assert acc.stacks_completed == [] and acc.ratio is None
    html = files.index_html.read_text()
    for text in ("ABORTED", "door_closed_mid_run", "No claims check", "No stack completed", "not run"):
        assert text in html, text
    check_sums(acc)


async def test_lot_of_three_stacks(healthy: Line, runs: Path) -> None:
    config, _ = healthy
    outcome = await start_run("flow-c", config, stacks=3, after=file_report)
    assert outcome.state is RunState.COMPLETE
    files = write_report(outcome.directory)
    check_pictures(files, 3)
    assert sorted(p.name for p in files.travelers.values()) == ["traveler-S1.png", "traveler-S2.png",
                                                                "traveler-S3.png"]
    data = load_run(outcome.directory)
    acc = data.accounting
    assert len(acc.stacks_completed) == 3 and acc.throughput_per_hour > 0
    neck = next(k for k in acc.kinds if k.kind == acc.bottleneck)
    assert acc.ratio == pytest.approx(neck.utilization)
    assert acc.bound_per_hour == pytest.approx(len(neck.pool) / (neck.occupancy_per_stack.tool / 3600))
    html = files.index_html.read_text()
    for s in outcome.stacks:
        assert s.stack_id in html
    check_sums(acc)


def _as_older_run(src: Path, dst: Path) -> None:
    """The same run as the pre-lot format wrote it: no stack/stacks/pools fields, one Stack per file."""
    events = read_events(src / JOURNAL)
    dst.mkdir()
    Journal(dst / JOURNAL, dst.name).close()  # the schema, then rows with the original times
    db = sqlite3.connect(dst / JOURNAL)
    for e in events:
        data = {k: v for k, v in e.data.items() if k not in ("stack", "stacks", "pools")}
        if e.kind == "permissive_refused":
            data.pop("tool", None)
        if e.kind == "traveler":
            data = {"stack": e.data["stacks"][0], "claims": next(iter(e.data["claims"].values()), [])}
        row = (e.seq, e.ts, dst.name, e.kind, json.dumps(data))
        db.execute("INSERT INTO events (seq, ts, run_id, kind, data) VALUES (?, ?, ?, ?, ?)", row)
    db.commit()
    db.close()
    (dst / TRAVELER).write_text(json.dumps(json.loads((src / TRAVELER).read_text())["stacks"][0]))
    summary = json.loads((src / SUMMARY).read_text())
    summary.pop("stacks")
    (dst / SUMMARY).write_text(json.dumps(summary))


async def test_older_single_stack_run_directory(healthy: Line, runs: Path) -> None:
    config, emulated = healthy
    emulated.tools["mounter1"].set_interlock("n2_ok", False)
    task = asyncio.create_task(start_run("flow-a", config, wafers=2, after=file_report))
    run_dir = await _wait_for_state(runs, "HELD")
    emulated.tools["mounter1"].set_interlock("n2_ok", True)
    await send_command(run_dir, "restart", "op", "N2 back")
    outcome = await asyncio.wait_for(task, 30)
    old = runs / "20200101-000000-0001"
    _as_older_run(outcome.directory, old)
    new, was = load_run(outcome.directory), load_run(old)
    assert [s.stack_id for s in was.stacks] == [outcome.stack.stack_id]
    assert was.stacks[0].claims_ok and len(was.stacks[0].claims) == len(outcome.claims)
    assert was.accounting.model_dump(exclude={"kinds"}) == new.accounting.model_dump(exclude={"kinds"})
    assert [k.kind for k in was.accounting.kinds] == [k.kind for k in new.accounting.kinds]
    assert [(r.tool, r.interlock) for r in was.history] == [(r.tool, r.interlock) for r in new.history]
    files = write_report(old)
    check_pictures(files, 1)
    (old / TRAVELER).unlink()  # no traveler.json: the journal's last traveler event stands in
    assert load_run(old).stacks[0].traveler is not None
    shutil.rmtree(old)


async def test_cli_report(healthy: Line, runs: Path) -> None:
    config, _ = healthy
    outcome = await start_run("flow-c", config, after=file_report)
    runner = CliRunner()
    result = runner.invoke(app, ["report", outcome.run_id])
    assert result.exit_code == 0, result.output
    for text in ("coater1", "mounter1", "throughput", "bottleneck", "claims check", "4 ok", "index.html"):
        assert text in result.output, text
    result = runner.invoke(app, ["report", "--open-path", outcome.run_id])
    assert result.exit_code == 0 and result.output.strip() == str((outcome.directory / "report" /
                                                                   "index.html").resolve())
    result = runner.invoke(app, ["report", "20991231-235959-beef"])
    assert result.exit_code == 2 and "no run 20991231-235959-beef" in result.output
    result = runner.invoke(app, ["report", "yesterday"])
    assert result.exit_code == 2 and "malformed" in result.output


def test_run_aborted_before_its_first_step(runs: Path) -> None:
    directory = runs / "20261122-060000-0abc"
    directory.mkdir()
    with Journal(directory / JOURNAL, directory.name) as journal:
        journal.append("run_created", flow="flow-a", wafers=2, line="emulated", time_scale=20000.0,
                       stack_id=f"{directory.name}-S1", stacks=[f"{directory.name}-S1"],
                       steps=["A1", "A2a"], pools={"sputterer": ["sputter1"]})
        journal.append("state", **{"from": "IDLE", "to": "ABORTING", "command": "abort", "who": "op",
                                   "why": "wrong lot"})
        journal.append("state", **{"from": "ABORTING", "to": "ABORTED", "command": "sc", "who": "sequencer",
                                   "why": ""})
    files = write_report(directory)  # no traveler.json, no summary.json, no job
    assert files.travelers == {} and png_size(files.gantt_png)[0] >= 1200
    data = load_run(directory)
    assert data.state == "ABORTED" and data.accounting.jobs == [] and data.accounting.ratio is None
    html = files.index_html.read_text()
    assert "wrong lot" in html and "No traveler filed" in html and "<td>A2a</td>" in html
    sputter = data.accounting.tool("sputter1")  # the window has no job: all standby, all idle
    assert sputter.standby.tool == sputter.idle.tool == pytest.approx(data.accounting.window.tool)


def test_empty_journal_is_a_clear_error(runs: Path) -> None:
    directory = runs / "20261122-060000-0abd"
    directory.mkdir()
    Journal(directory / JOURNAL, directory.name).close()
    with pytest.raises(JournalError, match="no events yet"):
        write_report(directory)
    result = CliRunner().invoke(app, ["report", directory.name])
    assert result.exit_code == 2 and "no events yet" in result.output

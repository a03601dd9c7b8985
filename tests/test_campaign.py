"""The fault campaign, bounded and seeded (issue 10.9): 20 runs of Flow A on a `sim up` line, each
with one fault (every kind at least once: the first 14 runs take each in turn), the campaign acting
as the operator. Counted from the emulators' own job ledger: nothing doubled, nothing lost, no start
into an open interlock, no traceback, every door or EMO opened mid-job ABORTED, and no stack scrapped
over a step its tool completed. `python -m benchmarks.campaign --runs 200` is the full campaign.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.campaign import FAULTS, run_campaign


@pytest.mark.timeout(900)
async def test_bounded_campaign_meets_its_targets(tmp_path: Path) -> None:
    figures = await run_campaign(20, seed=3, work=tmp_path)
    assert figures["runs"] == 20 and set(figures["faults"]) == set(FAULTS)
    problems = figures["problems"]
    assert figures["doubled"] == 0, problems
    assert figures["lost"] == 0, problems
    assert figures["violations"] == 0, problems
    assert figures["tracebacks"] == 0, problems
    assert figures["safety_mid_job_not_aborted"] == 0, problems
    assert figures["scrapped_over_completed_step"] == 0, problems
    assert "TIMEOUT" not in figures["outcomes"], figures
    assert figures["outcomes"].get("COMPLETE", 0) >= 5  # link faults, restarts and kills recover


@pytest.mark.timeout(900)
async def test_bounded_campaign_on_the_fab_line(tmp_path: Path) -> None:
    """The link faults, the HSMS separate, a door and both kills once each on the all-GEM fab line (the
    process faults act in the same tool model on every transport; `benchmarks.campaign --line fab` runs
    them all)."""
    faults = ("silence", "garble", "delay", "link_drop", "separate", "door_open", "kill9", "kill9_held")
    figures = await run_campaign(len(faults), seed=5, work=tmp_path, line="fab", faults=faults)
    assert set(figures["faults"]) == set(faults)
    problems = figures["problems"]
    for figure in ("doubled", "lost", "violations", "tracebacks", "safety_mid_job_not_aborted",
                   "scrapped_over_completed_step"):
        assert figures[figure] == 0, (figure, problems)
    assert set(figures["outcomes"]) <= {"COMPLETE", "STOPPED", "ABORTED", "HELD"}, figures["outcomes"]
    assert figures["outcomes"].get("COMPLETE", 0) >= 5

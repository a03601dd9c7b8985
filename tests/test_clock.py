"""The hot-path timestamps read like datetime's own ISO-8601 and tell the time."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sequencer.run.clock import utc_now_ms, utc_now_us


def test_timestamps_are_iso_utc_and_now() -> None:
    before = datetime.now(UTC)
    us, ms = utc_now_us(), utc_now_ms()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", us)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ms)
    assert before <= datetime.fromisoformat(us) <= after
    parsed_ms = datetime.fromisoformat(ms.replace("Z", "+00:00"))
    assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= parsed_ms <= after

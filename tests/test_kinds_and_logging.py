"""Recipe ranges from process-flows.md, and log records carrying tool/transport/run/step context."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from drivers.kinds.bonder import BonderRecipe
from drivers.kinds.dicing_saw import DicingSawRecipe
from drivers.kinds.sputterer import SputtererRecipe
from drivers.logs import ContextFilter, JsonFormatter, log_context, tool_logger


@pytest.mark.parametrize(
    ("model", "good", "field", "bad"),
    [
        (BonderRecipe, {"temp_c": 200, "force_kn": 20, "hold_s": 1800}, "temp_c", 260),
        (BonderRecipe, {"temp_c": 200, "force_kn": 20, "hold_s": 1800}, "force_kn", 0.5),
        (SputtererRecipe, {"material": "Al", "thickness_nm": 300}, "material", "Au"),
        (SputtererRecipe, {"material": "Al", "thickness_nm": 300}, "base_pressure_torr", 1e-5),
        (DicingSawRecipe, {"spindle_rpm": 30000, "feed_mm_s": 20, "cut_count": 10,
                           "cut_length_mm": 200}, "cut_count", 0),
    ],
)
def test_recipe_ranges(model: type, good: dict, field: str, bad: object) -> None:
    model(**good)
    with pytest.raises(ValidationError) as exc:
        model(**(good | {field: bad}))
    assert exc.value.errors()[0]["loc"] == (field,)


def test_recipe_deadline_covers_the_process() -> None:
    r = DicingSawRecipe(spindle_rpm=30000, feed_mm_s=10, cut_count=100, cut_length_mm=300)
    assert r.max_duration_s() > 100 * (300 / 10 + 2)


def test_json_log_carries_context(caplog: pytest.LogCaptureFixture) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("drivers.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(run="run-7", step="A6"):
            tool_logger("drivers.test", "bonder1", "modbus").info("job %d started", 42)
    finally:
        logger.removeHandler(handler)
    doc = json.loads(JsonFormatter().format(records[0]))
    assert doc["msg"] == "job 42 started"
    assert (doc["tool"], doc["transport"], doc["run"], doc["step"]) == (
        "bonder1", "modbus", "run-7", "A6")

"""The solder alloy table is data (configs/materials/alloys.yaml), validated like every config."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from drivers.errors import ConfigError
from drivers.kinds.ball_mounter import ALLOYS, BallMounterRecipe, load_alloys, reflow_window_c


def test_the_shipped_table_feeds_the_reflow_window_and_the_recipe() -> None:
    assert ALLOYS["Pb63Sn37"].liquidus_c == 183.0 and ALLOYS["Pb90Sn10"].solidus_c == 268.0
    assert reflow_window_c("Pb63Sn37") == (203.0, 223.0)
    with pytest.raises(ValidationError, match="'Pb63Sn37', 'SAC305'"):
        BallMounterRecipe(operation="mount", alloy="Sn100", ball_count=10, peak_temp_c=250)


def test_a_bad_table_names_the_file_the_alloy_and_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "alloys.yaml"
    bad.write_text("alloys:\n  Weird: {solidus_c: 250, liquidus_c: 200}\n"
                   "  Hot: {solidus_c: 500, liquidus_c: 510}\n")
    with pytest.raises(ConfigError) as err:
        load_alloys(bad)
    text = str(err.value)
    assert str(bad) in text and "alloys.Weird" in text and "solidus 250 C above liquidus 200 C" in text
    assert "alloys.Hot.solidus_c" in text

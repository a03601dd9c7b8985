"""Package structures as modules (issue 12.1): discovered from sequencer/process/structures/, each
with its rules, permissives, claims and limits, the limits read and validated from
configs/structures/<name>.yaml."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.configs import SHIPPED, set_config_dir
from drivers.errors import ConfigError
from sequencer.process import structures
from sequencer.process.check import check_flow
from sequencer.process.flow import load_flow
from sequencer.process.structures.flipchip import FlipchipLimits
from sequencer.process.structures.limits import StackLimits, load_limits


def test_every_structure_is_a_discovered_module_with_its_limits_file() -> None:
    assert structures.names() == ["csp", "double_sided", "flipchip", "stack"]
    assert {p.stem for p in (SHIPPED / "structures").glob("*.yaml")} == set(structures.names())
    with pytest.raises(ConfigError, match=r"structure 'tower' is not one of \['csp'"):
        structures.named("tower")


@pytest.mark.parametrize(("flow", "structure"), [("flow-a", "stack"), ("flow-c", "csp"),
                                                 ("flow-d", "flipchip"), ("flow-e", "double_sided")])
def test_each_flow_is_judged_by_its_structure(flow: str, structure: str) -> None:
    report = check_flow(load_flow(flow))
    assert report.stack.structure == structure and report.ok
    judged = structures.named(structure).claims(report.stack)
    assert [c.claim for c in report.claims] == [c.claim for c in judged]


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "structures").mkdir()
    set_config_dir(tmp_path)
    load_limits.cache_clear()
    yield tmp_path
    set_config_dir(None)
    load_limits.cache_clear()


@pytest.mark.parametrize(("change", "said"), [
    ({"insulating_um": [75.0, 10.0]}, "insulating_um: Value error, a range is [low, high]"),
    ({"heat_um": [0.1, float("nan")]}, "not a finite number"),
    ({"min_wafer_um": -1}, "min_wafer_um"),
    ({"typo_um": 3}, "typo_um"),
])
def test_limits_are_validated_naming_file_and_field(config_dir: Path, change: dict[str, object],
                                                    said: str) -> None:
    doc = {**yaml.safe_load((SHIPPED / "structures" / "stack.yaml").read_text()), **change}
    path = config_dir / "structures" / "stack.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_limits("stack", StackLimits)
    assert str(path) in str(err.value) and said in str(err.value)


def test_a_site_may_tighten_a_structures_limits(config_dir: Path) -> None:
    doc = yaml.safe_load((SHIPPED / "structures" / "flipchip.yaml").read_text())
    tighter = {**doc, "fill_max_water_pct": 0.1}
    (config_dir / "structures" / "flipchip.yaml").write_text(yaml.safe_dump(tighter))
    assert load_limits("flipchip", FlipchipLimits).fill_max_water_pct == 0.1

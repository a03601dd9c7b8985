"""Property-based bad input (issue 11.5): the shipped line, profiles, recipes and flows, each with one
value replaced, one key dropped or one unknown key added, go through the same loaders the verbs use.
Whatever hypothesis tries: a clear error (ConfigError/ProfileError) or an accepted config, never
another exception; a NaN or infinity is never accepted; a recipe value outside its field's documented
range is never accepted."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import annotated_types
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import WaferlineError
from drivers.kinds import KINDS
from drivers.line import LINE_DIR, load_line
from drivers.profile_fit import check_fits_kind
from drivers.profiles import load_profile
from drivers.profiles.loader import PROFILE_DIR
from sequencer.process.check import check_flow
from sequencer.process.flow import FLOW_DIR, load_flow
from waferline.tools_cmd import parse_recipe

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "recipes"
NASTY = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**12), 10**12), st.text(max_size=12),
    st.booleans(), st.none(), st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from(["nan", "inf", "-inf", "1e999", "0", "-1", "+", "#", "{prefix}", "result.x"]),
)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value in a document (mappings and lists alike)."""
    out = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            out += paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += paths(value, (*prefix, i))
    return out


def mutate(data: Any, path: tuple[Any, ...], how: str, value: Any) -> tuple[Any, bool]:
    """(the mutated document, whether the change put a non-finite number in it)."""
    doc = yaml.safe_load(yaml.safe_dump(data))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "drop" and isinstance(parent, dict):
        del parent[last]
        return doc, False
    if how == "extra" and isinstance(parent, dict):
        parent[f"unknown_{last}"] = value
    else:
        parent[last] = value
    return doc, isinstance(value, float) and not math.isfinite(value)


def load_through_file(doc: Any, loader: Any) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mutated.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return loader(path)


def mutation(data: Any) -> Any:
    return st.tuples(st.sampled_from(paths(data)), st.sampled_from(["set", "set", "drop", "extra"]), NASTY)


def check_property(data: Any, change: tuple[Any, str, Any], loader: Any) -> None:
    doc, non_finite = mutate(data, *change)
    try:
        load_through_file(doc, loader)
    except WaferlineError:
        return  # a clear error: fine
    assert not non_finite, f"accepted a non-finite number at {change[0]}"


LINE = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())


@SETTINGS
@given(mutation(LINE))
def test_line_configs(change: tuple[Any, str, Any]) -> None:
    check_property(LINE, change, load_line)


def _profile_loader(path: Path) -> Any:
    profile = load_profile(path)
    if profile.kind not in KINDS:
        return None  # `profiles check` refuses it by name
    check_fits_kind(profile, KINDS[profile.kind], str(path))
    return profile


PROFILES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted(PROFILE_DIR.glob("bonder-*.yaml"))}


@SETTINGS
@given(st.sampled_from(sorted(PROFILES)).flatmap(lambda n: st.tuples(st.just(n), mutation(PROFILES[n]))))
def test_profiles(named: tuple[str, tuple[Any, str, Any]]) -> None:
    name, change = named
    check_property(PROFILES[name], change, _profile_loader)


def _bounds(model: Any, field: str) -> tuple[float, float]:
    low, high = -math.inf, math.inf
    for m in model.model_fields[field].metadata:
        if isinstance(m, annotated_types.Ge):
            low = float(m.ge)  # type: ignore[arg-type]
        if isinstance(m, annotated_types.Le):
            high = float(m.le)  # type: ignore[arg-type]
    return low, high


RECIPE_DOCS = {k: yaml.safe_load((RECIPES / f"{k}.yaml").read_text()) for k in sorted(KINDS)}


@SETTINGS
@given(st.sampled_from(sorted(KINDS)).flatmap(
    lambda k: st.tuples(st.just(k), st.sampled_from(sorted(RECIPE_DOCS[k])),
                        st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(10**9), 10**9))))
def test_recipes_never_accept_a_value_outside_its_range(case: tuple[str, str, float]) -> None:
    kind, field, value = case
    doc = {**RECIPE_DOCS[kind], field: value}
    try:
        recipe = load_through_file(doc, lambda p: parse_recipe(kind, p, []))
    except WaferlineError:
        return
    low, high = _bounds(KINDS[kind].recipe_model, field)
    accepted = getattr(recipe, field)
    assert math.isfinite(accepted) and low <= accepted <= high, (kind, field, value)


FLOW = yaml.safe_load((FLOW_DIR / "flow-a.yaml").read_text())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutation(FLOW))
def test_flows_load_and_check(change: tuple[Any, str, Any]) -> None:
    check_property(FLOW, change, lambda p: check_flow(load_flow(p)))

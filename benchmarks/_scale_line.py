"""The scale benchmark's line: N emulated tools of all nine kinds over all four transports, one recipe
per kind sized so a job lasts 0.5-2 s of wall time, and the file-descriptor limit they need."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import yaml

from drivers.addresses import (
    Address,
    HsmsAddress,
    ModbusRtuAddress,
    ModbusTcpAddress,
    MqttAddress,
    SerialAddress,
)
from drivers.kinds import KINDS
from drivers.line import BrokerConfig, LineConfig, ToolConfig
from drivers.tool import Recipe
from drivers.validation import read_yaml

# Share of the tools per transport (the mix); the largest remainder rounds.
MIX = (("modbus_tcp", 0.40), ("modbus_rtu", 0.10), ("serial", 0.25), ("mqtt", 0.25))
MIXES: dict[str, tuple[tuple[str, float], ...]] = {"default": MIX, "hsms": (("hsms", 1.0),)}
PROFILE_SUFFIX = {"modbus_tcp": "modbus", "modbus_rtu": "modbus", "serial": "serial", "mqtt": "mqtt",
                  "hsms": "hsms"}
# 600 tool s per wall s with the recipes below: shortest job (coater) ~0.52 s, longest (bonder) ~1.98 s.
TIME_SCALE = 600.0
RECIPE_DIR = Path(__file__).resolve().parents[1] / "configs" / "recipes"
# The shipped example recipes span 155-2685 tool s (17x), too wide for one time scale to keep every
# job within 0.5-2 s; these setpoints (all inside the recipe models' ranges) bring them to 310-1185 s.
RECIPE_OVERRIDES: dict[str, dict[str, Any]] = {
    "ball_mounter": {"ball_count": 60000},  # 318 -> ~430 tool s (longer placement)
    "bonder": {"hold_s": 300},  # 2685 -> 1185 tool s
    "coater": {"target_thickness_um": 500},  # 155 -> ~310 tool s (longer dispense)
    "cvd": {"thickness_nm": 150},  # 1299 -> 1110 tool s
    "dicing_saw": {"cut_count": 25},  # 1886 -> 830 tool s
    "etcher": {"target_depth_um": 150},  # 2011 -> 1031 tool s
    "grinder": {"feed_um_s": 1.0},  # 295 -> 670 tool s
}


def transport_counts(tools: int, mix: str = "default") -> dict[str, int]:
    """Tools per transport by the mix; every transport gets at least one once there are enough tools."""
    if tools < 1:
        raise ValueError("tools must be >= 1")
    shares = MIXES[mix]
    exact = {t: tools * share for t, share in shares}
    counts = {t: int(v) for t, v in exact.items()}
    by_remainder = sorted(exact, key=lambda t: exact[t] - counts[t], reverse=True)
    for t in by_remainder[: tools - sum(counts.values())]:
        counts[t] += 1
    if tools >= len(shares):
        for t in counts:
            while counts[t] == 0:
                donor = max(counts, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[t] += 1
    return counts


def _address(transport: str, name: str, index: int) -> Address:
    if transport == "modbus_tcp":
        return ModbusTcpAddress(host="127.0.0.1", port=0, unit=1)
    if transport == "modbus_rtu":  # a pty has no parity bit (the emulator answers with N anyway)
        return ModbusRtuAddress(device="pty", baud=115200, parity="N", unit=index % 247 + 1)
    if transport == "serial":
        return SerialAddress(url="pty", baud=115200)
    if transport == "hsms":
        return HsmsAddress(port=0, session=index % 32768)
    return MqttAddress(prefix=f"waferline/scale/{name}")


def build_line(tools: int, broker: BrokerConfig, time_scale: float = TIME_SCALE,
               mix: str = "default") -> LineConfig:
    """`tools` emulated tools in one block per transport; kinds cycle through all nine."""
    kinds = sorted(KINDS)
    entries: list[ToolConfig] = []
    for transport, count in transport_counts(tools, mix).items():
        for _ in range(count):
            i = len(entries)
            kind = kinds[i % len(kinds)]
            name = f"t{i:03d}-{kind}-{transport}".replace("_", "-")
            entries.append(ToolConfig(
                name=name, kind=kind, profile=f"{kind}-{PROFILE_SUFFIX[transport]}",
                address=_address(transport, name, i),
            ))
    return LineConfig(
        name=f"scale{tools}", description=f"{tools} emulated tools for benchmarks._scale",
        time_scale=time_scale, seed=5, broker=broker, tools=entries,
    )


def write_line(line: LineConfig, path: Path) -> Path:
    """The line as YAML for `waferline sim up --line` (the emulator process loads it like any line)."""
    path.write_text(yaml.safe_dump(line.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path


def load_recipes() -> dict[str, Recipe]:
    """One validated recipe per kind: the shipped example with RECIPE_OVERRIDES applied."""
    out: dict[str, Recipe] = {}
    for kind, cls in KINDS.items():
        data = read_yaml(RECIPE_DIR / f"{kind}.yaml")
        data.update(RECIPE_OVERRIDES.get(kind, {}))
        out[kind] = cls.recipe_model.model_validate(data)
    return out


def raise_nofile(wanted: int) -> dict[str, Any]:
    """Raise RLIMIT_NOFILE's soft limit towards the hard one; child processes inherit it.

    Returns the limits and whether `wanted` descriptors fit, so a refusal is reported, not hidden.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    note = None
    if soft != resource.RLIM_INFINITY and soft < wanted:
        # an unlimited hard limit still has the kernel's nr_open cap: ask for what is needed then
        target = wanted if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            note = f"setrlimit(NOFILE, {target}) refused: {exc}"
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fits = soft == resource.RLIM_INFINITY or soft >= wanted
    if not fits and note is None:
        note = f"NOFILE soft limit {soft} < {wanted} descriptors needed (hard limit {hard})"
    return {"soft": soft, "hard": hard, "wanted": wanted, "fits": fits, "note": note}


def fds_needed(tools: int) -> int:
    """A generous estimate for the busier process (the emulators: a listening socket and a connection
    per Modbus TCP tool, master+slave per pty, two broker connections per MQTT tool) plus headroom."""
    return tools * 4 + 256

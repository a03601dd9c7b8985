"""What MQTT security costs: `Sputterer.status()` through the default embedded broker (a user per
tool and controller, the line's ACL, TLS) against the same read through an anonymous, plain-TCP
embedded broker, measured in alternating blocks in the same run (benchmarks/_timing.py).

    python -m benchmarks.mqtt_security --n 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._timing import compare
from drivers.factory import make_tool
from drivers.line import LineConfig, apply_endpoints
from drivers.validation import validate_model
from sim_tools.line import EmulatedLine


def _line(broker: dict[str, Any]) -> LineConfig:
    return validate_model(LineConfig, {
        "name": "bench", "time_scale": 20000, "broker": broker,
        "tools": [{"name": "sputter1", "kind": "sputterer", "profile": "sputterer-mqtt",
                   "address": {"transport": "mqtt", "prefix": "waferline/bench/sputter1"}}]}, "bench")


async def measure(n: int) -> dict[str, Any]:
    secure, plain = _line({"embedded": True}), _line({"embedded": True, "anonymous": True, "tls": False})
    with tempfile.TemporaryDirectory(prefix="waferline-bench-") as tmp:
        async with EmulatedLine(secure, Path(tmp) / "s") as a, EmulatedLine(plain, Path(tmp) / "p") as b:
            assert a.endpoints is not None and b.endpoints is not None
            live_a, live_b = apply_endpoints(secure, a.endpoints), apply_endpoints(plain, b.endpoints)
            tool_a = make_tool(live_a.tools[0], live_a)
            tool_b = make_tool(live_b.tools[0], live_b)
            async with tool_a, tool_b:
                row = await compare("mqtt: users+ACL+TLS vs anonymous plain", tool_a.status, tool_b.status, n)
    return {"what": row["transport"], "secure_ms": row["driver_ms"], "plain_ms": row["raw_ms"],
            "ratio": row["ratio"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=500, help="status reads per side")
    print(json.dumps(asyncio.run(measure(parser.parse_args().n))))


if __name__ == "__main__":
    main()

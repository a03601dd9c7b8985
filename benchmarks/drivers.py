"""Driver overhead per transport: `tool.status()` through waferline vs. the raw library, same run.

Run:  python -m benchmarks.drivers [--n 500]
Each transport module starts its emulator on loopback, times n status reads through the driver and
n equivalent reads with the bare library (pymodbus / serial_asyncio_fast / aiomqtt / secsgem), and
returns both means. Target: driver/raw <= 1.2; HSMS <= 1.0 (at least as fast as secsgem's bare S1F3).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
from typing import Any

TARGET = 1.2
TARGETS = {"hsms (vs secsgem)": 1.0}
TRANSPORTS = ("modbus", "serial", "mqtt", "hsms")


async def run_all(n: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in TRANSPORTS:
        module = importlib.import_module(f"benchmarks._{name}")
        measure = getattr(module, "measure_all", module.measure)  # mqtt: amqtt and mosquitto
        result = await measure(n)
        rows.extend(result if isinstance(result, list) else [result])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=500, help="status reads per measurement")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rows = asyncio.run(run_all(args.n))
    print(f"{'transport':<22}{'driver ms':>11}{'raw ms':>10}{'ratio':>8}  target")
    for r in rows:
        target = TARGETS.get(r["transport"], TARGET)
        verdict = "ok" if r["ratio"] <= target else "OVER"
        print(f"{r['transport']:<22}{r['driver_ms']:>11.3f}{r['raw_ms']:>10.3f}"
              f"{r['ratio']:>8.2f}  <= {target} {verdict}")


if __name__ == "__main__":
    main()

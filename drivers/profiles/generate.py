"""Write a starter profile for any kind on any transport from the kind's declared models.

A bench engineer binding a kind to a new device starts here (`waferline profiles new KIND
TRANSPORT`) and edits addresses, scaling and command syntax to match the device's manual; the
emulated line uses the generated maps as they are. Layout rules (stable, documented in the file):
Modbus status in input registers from 0, interlocks and boolean results in discrete inputs,
job/command at holding 0-2 and setpoints from holding 10; serial `STATUS?`, `RESULT?`, `RECIPE?`
and `START <job> KEY=value ...`; MQTT the default topic layout; HSMS status and result SVIDs from
1001 and 2001, setpoints as DVIDs from 3001, remote command START with a CPNAME per field, and one
CEID per contract event.
"""

from __future__ import annotations

from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel

from drivers.profiles.base import CONTRACT_ENUMS
from drivers.profiles.hsms import CONTROL_STATES
from drivers.tool import Tool

COMMON_ALARMS: dict[int, Any] = {
    10: {"text": "door opened during process", "class": "safety"},
    11: {"text": "emergency off pressed", "class": "safety"},
    12: {"text": "interlock input lost during process", "class": "safety"},
    900: "process alarm",
}
Kind = type[Tool[Any, Any]]
FieldType = tuple[str, tuple[str, ...]]  # (float|int|bool|enum, literal members)


def field_type(model: type[BaseModel], name: str) -> FieldType:
    annotation = model.model_fields[name].annotation
    if get_origin(annotation) is Literal:
        return "enum", tuple(str(a) for a in get_args(annotation))
    for py, text in ((bool, "bool"), (int, "int"), (float, "float")):
        if annotation is py:
            return text, ()
    raise TypeError(f"{model.__name__}.{name}: {annotation} is not float, int, bool or Literal[str]")


def kind_variables(kind: Kind) -> dict[str, dict[str, FieldType]]:
    """Variables by role: status (contract + interlocks + process values), result, setpoint."""
    status: dict[str, FieldType] = {
        "state": ("enum", tuple(CONTRACT_ENUMS["state"])),
        "alarm_id": ("int", ()),
        "job_id": ("int", ()),
        "job_outcome": ("enum", tuple(CONTRACT_ENUMS["outcome"])),
        "boot_id": ("int", ()),
    }
    status |= {n: ("bool", ()) for n in kind.interlock_inputs}
    status |= {n: ("float", ()) for n in kind.process_values}
    results = {n: field_type(kind.result_model, n) for n in kind.result_variables()}
    setpoints = {n: field_type(kind.recipe_model, n) for n in kind.recipe_model.model_fields}
    return {"status": status, "result": results, "setpoint": setpoints}


def _enums(groups: dict[str, dict[str, FieldType]]) -> dict[str, dict[str, int]]:
    enums: dict[str, dict[str, int]] = {k: dict(v) for k, v in CONTRACT_ENUMS.items()}
    for group in groups.values():
        for name, (typ, members) in group.items():
            if typ == "enum" and name not in ("state", "job_outcome"):
                enums[name] = {m: i + 1 for i, m in enumerate(members)}
    return enums


def _enum_ref(name: str) -> str:
    return {"state": "state", "job_outcome": "outcome"}.get(name, name)


def _typed_variables(groups: dict[str, dict[str, FieldType]]) -> dict[str, Any]:
    """Text transports (serial, MQTT) carry every variable by type; enums by member name."""
    variables: dict[str, Any] = {}
    for group in groups.values():
        for name, (typ, _members) in group.items():
            variables[name] = {"type": typ, "enum": _enum_ref(name)} if typ == "enum" else {"type": typ}
    return variables


def _header(kind: Kind, transport: str) -> dict[str, Any]:
    return {
        "kind": kind.kind,
        "transport": transport,
        "description": f"{kind.kind} over {transport}: generated layout (waferline profiles new)",
        "alarms": dict(COMMON_ALARMS),
    }


def modbus_profile(kind: Kind) -> dict[str, Any]:
    groups = kind_variables(kind)
    variables: dict[str, Any] = {}
    cursor = {"input": 0, "discrete": 0, "holding": 10, "coil": 0}

    def place(name: str, typ: str, members: tuple[str, ...], writable: bool) -> None:
        if typ == "bool":
            table = "coil" if writable else "discrete"
            variables[name] = {"table": table, "address": cursor[table], "type": "bool"}
            cursor[table] += 1
            return
        table = "holding" if writable else "input"
        wire = {"float": "float32", "int": "uint32", "enum": "uint16"}[typ]
        spec: dict[str, Any] = {"table": table, "address": cursor[table], "type": wire}
        if typ == "enum":
            spec["enum"] = _enum_ref(name)
        variables[name] = spec
        cursor[table] += 2 if wire in ("float32", "uint32") else 1

    variables.update({
        "state": {"table": "input", "address": 0, "type": "uint16", "enum": "state"},
        "alarm_id": {"table": "input", "address": 1, "type": "uint16"},
        "job_outcome": {"table": "input", "address": 2, "type": "uint16", "enum": "outcome"},
        "job_id": {"table": "holding", "address": 0, "type": "uint32"},
        "command": {"table": "holding", "address": 2, "type": "uint16",
                    "description": "1 start, 2 abort, 3 reset"},
    })
    cursor["input"] = 4
    for group, writable in (("status", False), ("result", False), ("setpoint", True)):
        for name, (typ, members) in groups[group].items():
            if name not in variables:
                place(name, typ, members, writable)
    setpoints = list(groups["setpoint"])
    return _header(kind, "modbus") | {
        "word_order": "big",
        "enums": _enums(groups),
        "variables": variables,
        "commands": {
            "start": {"args": [*setpoints, "job_id"], "write": "command", "value": 1},
            "abort": {"write": "command", "value": 2},
            "reset": {"write": "command", "value": 3},
        },
    }


def _key(name: str) -> str:
    return name.upper()


def serial_profile(kind: Kind) -> dict[str, Any]:
    groups = kind_variables(kind)

    def line(names: list[str]) -> str:
        return " ".join(f"{_key(n)}={{{n}}}" for n in names)

    variables = _typed_variables(groups)
    setpoints = list(groups["setpoint"])
    return _header(kind, "serial") | {
        "terminator": "\r\n",
        "encoding": "ascii",
        "error_reply": "ERR {code} {text}",
        "enums": _enums(groups),
        "queries": {
            "status": {"request": "STATUS?", "reply": line(list(groups["status"]))},
            "result": {"request": "RESULT?", "reply": line(list(groups["result"]))},
            "recipe": {"request": "RECIPE?", "reply": line(setpoints)},
        },
        "variables": variables,
        "commands": {
            "start": {"request": "START {job_id} " + line(setpoints), "reply": "OK"},
            "abort": {"request": "ABORT", "reply": "OK"},
            "reset": {"request": "RESET", "reply": "OK"},
        },
    }


def mqtt_profile(kind: Kind) -> dict[str, Any]:
    groups = kind_variables(kind)
    variables = _typed_variables(groups)
    return _header(kind, "mqtt") | {
        "qos": 1,
        "enums": _enums(groups),
        "variables": variables,
        "commands": {"start": {"args": ["job_id", *groups["setpoint"]]}, "abort": {}, "reset": {}},
    }


def render_yaml(kind: Kind, transport: str) -> str:
    """The profile as YAML with a header saying where it came from: one line per variable."""
    import yaml

    def item(key: Any, value: Any) -> str:  # `key: value` on one line, value in flow style
        text = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000, sort_keys=False)
        return str(text).strip()[1:-1]

    out = [
        f"# {kind.kind} over {transport}: generated by `waferline profiles new {kind.kind} {transport}`",
        "# from the kind's recipe/result models. Edit addresses, scaling and syntax to match a real",
        "# device's manual; the emulator serves whatever this file says.",
    ]
    for key, value in generate_profile(kind, transport).items():
        if isinstance(value, dict):
            out.append(f"{key}:")
            out.extend(f"  {item(k, v)}" for k, v in value.items())
        else:
            out.append(item(key, value))
    return "\n".join(out) + "\n"


SECS_FORMAT = {"float": "F8", "int": "U4", "bool": "BOOLEAN", "enum": "U1"}
SVID_BASE = {"status": 1001, "result": 2001}  # setpoints are DVIDs from 3001: they only travel in reports


def hsms_profile(kind: Kind) -> dict[str, Any]:
    groups = kind_variables(kind)
    variables: dict[str, Any] = {
        "clock": {"svid": 9001, "format": "A", "description": "E30 Clock (YYYYMMDDhhmmsscc)"},
        "control_state": {"svid": 9002, "format": "U1", "enum": "control", "description": "E30 ControlState"},
        "establish_comm_timeout_s": {"ecid": 9101, "format": "U2", "unit": "s", "default": 10,
                                     "description": "E30 EstablishCommunicationsTimeout"},
    }
    for group, base in (*SVID_BASE.items(), ("setpoint", 3001)):
        role = "dvid" if group == "setpoint" else "svid"
        for i, (name, (typ, _members)) in enumerate(groups[group].items()):
            spec: dict[str, Any] = {role: base + i, "format": SECS_FORMAT[typ]}
            if typ == "enum":
                spec["enum"] = _enum_ref(name)
            variables[name] = spec
    setpoints = list(groups["setpoint"])
    return _header(kind, "hsms") | {
        "gem": {"mdln": f"WL-{kind.kind.upper()}"[:20], "softrev": "1.0", "initial_control": "host_offline",
                "trace_period_s": 10},
        "enums": _enums(groups) | {"control": dict(CONTROL_STATES)},
        "variables": variables,
        "commands": {
            "start": {"rcmd": "START", "params": {"JOB_ID": "job_id", **{_key(n): n for n in setpoints}}},
            "abort": {"rcmd": "ABORT"},
            "reset": {"rcmd": "RESET"},
        },
        "events": {
            "job_started": {"ceid": 100, "rptid": 100, "variables": ["job_id", *setpoints]},
            "job_ended": {"ceid": 101, "rptid": 101,
                          "variables": ["job_id", "job_outcome", *groups["result"]]},
            "state_changed": {"ceid": 102, "rptid": 102, "variables": ["state", "job_id", "job_outcome"]},
            "alarm_changed": {"ceid": 103, "rptid": 103, "variables": ["alarm_id", "state"]},
            "interlock_changed": {"ceid": 104, "rptid": 104, "variables": list(kind.interlock_inputs)},
        },
    }


GENERATORS = {"modbus": modbus_profile, "serial": serial_profile, "mqtt": mqtt_profile, "hsms": hsms_profile}


def generate_profile(kind: Kind, transport: str) -> dict[str, Any]:
    if transport not in GENERATORS:
        raise ValueError(f"transport must be one of {sorted(GENERATORS)}, got {transport!r}")
    return GENERATORS[transport](kind)

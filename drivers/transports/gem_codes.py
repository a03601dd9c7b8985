"""GEM acknowledge codes (SEMI E5) and the shapes of the tool's own reports, parsed once for both the
host channel and the tests. A shape that does not fit raises ValueError (the link answers S9F7)."""

from __future__ import annotations

from drivers.transports.secs2 import Item

COMMACK = {0: "accepted", 1: "denied, try again"}
ONLACK = {0: "accepted", 1: "not allowed", 2: "already online"}
OFLACK = {0: "accepted"}
HCACK = {0: "acknowledged", 1: "command does not exist", 2: "cannot perform now",
         3: "at least one parameter is invalid", 4: "acknowledged, will be finished later",
         5: "rejected, already in the desired condition", 6: "no such object exists"}
CPACK = {1: "parameter name does not exist", 2: "illegal value", 3: "illegal format"}
ACKC7 = {0: "accepted", 1: "permission not granted", 2: "length error", 3: "matrix overflow",
         4: "PPID not found", 5: "mode unsupported", 6: "will be performed later"}
DRACK = {0: "accepted", 1: "insufficient space", 2: "invalid format", 3: "RPTID already defined",
         4: "VID does not exist"}
LRACK = {0: "accepted", 1: "insufficient space", 2: "invalid format", 3: "CEID already linked",
         4: "CEID does not exist", 5: "RPTID does not exist"}
ERACK = {0: "accepted", 1: "CEID does not exist"}
TIAACK = {0: "accepted", 1: "too many SVIDs", 2: "no more traces allowed", 3: "invalid period",
          4: "unknown SVID", 5: "invalid REPGSZ"}
EAC = {0: "accepted", 1: "ECID does not exist", 2: "busy", 3: "value out of range"}
# ALCD category (bits 1-7) by alarm class; bit 8 set: the alarm is set
ALCD_CATEGORY = {"safety": 1, "process": 4, "warning": 6}


def ack_code(item: Item | None) -> int:
    """The code of a one-byte acknowledge (B, or an integer item as some tools send)."""
    if item is None or item.format == "L" or not isinstance(item.value, bytes | list) or len(item.value) != 1:
        raise ValueError(f"expected a one-value acknowledge code, got {item!r}")
    return int(item.value[0])


def parse_alarm(item: Item | None) -> tuple[int, bool, str]:
    """S5F1 L[ALCD, ALID, ALTX] -> (ALID, set?, ALTX)."""
    if item is None or item.format != "L" or len(item.value) != 3:
        raise ValueError("S5F1 is L[ALCD, ALID, ALTX]")
    alcd, alid, altx = item.value
    return int(alid.scalar()), bool(ack_code(alcd) & 0x80), str(altx.value)


def parse_event(item: Item | None) -> tuple[int, list[tuple[int, list[Item]]]]:
    """S6F11 L[DATAID, CEID, L[L[RPTID, L[V...]]...]] -> (CEID, [(RPTID, values)])."""
    if item is None or item.format != "L" or len(item.value) != 3 or item.value[2].format != "L":
        raise ValueError("S6F11 is L[DATAID, CEID, L[reports]]")
    reports = []
    for report in item.value[2].value:
        if report.format != "L" or len(report.value) != 2 or report.value[1].format != "L":
            raise ValueError("an S6F11 report is L[RPTID, L[V...]]")
        reports.append((int(report.value[0].scalar()), list(report.value[1].value)))
    return int(item.value[1].scalar()), reports


def dsper(seconds: float) -> str:
    """E5 DSPER: hhmmss, or hhmmsscc when the period has hundredths."""
    cs = round(seconds * 100)
    h, rest = divmod(cs, 360000)
    m, rest = divmod(rest, 6000)
    s, c = divmod(rest, 100)
    return f"{h:02d}{m:02d}{s:02d}" + (f"{c:02d}" if c else "")


def parse_dsper(text: str) -> float:
    """Seconds of a DSPER; ValueError if it is not hhmmss or hhmmsscc."""
    if len(text) not in (6, 8) or not text.isdigit():
        raise ValueError(f"DSPER {text!r} is not hhmmss or hhmmsscc")
    h, m, s = int(text[0:2]), int(text[2:4]), int(text[4:6])
    c = int(text[6:8]) if len(text) == 8 else 0
    if m > 59 or s > 59:
        raise ValueError(f"DSPER {text!r}: minutes and seconds are 00-59")
    return h * 3600 + m * 60 + s + c / 100

"""Serial line codec: a profile template compiles to a formatter and a full-match parser.

The driver and the emulator both use this module, so the two sides of a line cannot drift apart:
`STATE={state} RPM={spindle_speed_rpm:.0f}` formats values into a line and parses a line back into
typed values (bool as 1/0, enum as member name, numbers with the field's format spec). Every
failure is a ValueError with a message naming the template, field and text; channels turn it into
ProtocolError.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from drivers.profiles.base import Value, ValueType
from drivers.profiles.serial import SerialProfile

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)", re.I)
_BOOL = {"1": True, "0": False}
# Fast path: a spec that only sets precision leaves the text a plain literal of the type, so a
# typed sub-pattern can check it and conversion needs no validation.
_PLAIN_SPEC = re.compile(r"(?:\.\d+)?[dfFeEg]?")
_TYPED = {"int": _INT.pattern, "float": _FLOAT.pattern, "bool": "[01]"}


def _short(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 120 else shown[:117] + "..."


@dataclass(frozen=True)
class FieldCodec:
    """One {field}: its value type, format spec and (for enums) member table."""

    name: str
    type: ValueType
    spec: str = ""
    members: Mapping[str, int] | None = None

    def format(self, value: Value) -> str:
        text = format(self._wire_value(value), self.spec)
        if not text:
            raise ValueError(f"field {self.name}: empty text cannot be parsed back")
        return text

    def _wire_value(self, value: Value) -> Value:
        if self.type == "bool":
            if value not in (True, False, 0, 1) or isinstance(value, str | float):
                raise ValueError(f"field {self.name}: {value!r} is not a bool")
            return "1" if value else "0"
        if self.type == "enum":
            assert self.members is not None
            if isinstance(value, str) and value in self.members:
                return value
            if isinstance(value, int) and not isinstance(value, bool):
                for member, code in self.members.items():
                    if code == value:
                        return member
            raise ValueError(f"field {self.name}: {value!r} is not one of {sorted(self.members)}")
        if self.type == "int":
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if not isinstance(value, int):
                raise ValueError(f"field {self.name}: {value!r} is not an int")
            return int(value)
        if self.type == "float":
            if isinstance(value, str):
                raise ValueError(f"field {self.name}: {value!r} is not a number")
            return float(value)
        return str(value)

    def parse(self, text: str) -> Value:
        raw = text
        if self.type != "str":
            if self.spec:  # padding and grouping from the spec are not part of the value
                text = text.strip()
                for sep in ",_":
                    if sep in self.spec:
                        text = text.replace(sep, "")
            if self.type == "bool" and text in _BOOL:
                return _BOOL[text]
            if self.type == "int" and _INT.fullmatch(text):
                return int(text)
            if self.type == "float" and _FLOAT.fullmatch(text):
                return float(text)
            if self.type == "enum" and self.members is not None and text in self.members:
                return text
            allowed = {
                "bool": "1 or 0",
                "int": "an integer",
                "float": "a number",
                "enum": f"one of {sorted(self.members or {})}",
            }[self.type]
            raise ValueError(f"field {self.name}: {_short(raw)} is not {allowed}")
        return text

    def fast(self) -> tuple[str, Callable[[str], Value]] | None:
        """(sub-pattern, converter) when the text alone proves the value valid, else None."""
        if self.type == "str":
            return "(.+?)", str
        if self.type == "enum" and self.members:
            return "(" + "|".join(map(re.escape, self.members)) + ")", str
        if self.type in _TYPED and _PLAIN_SPEC.fullmatch(self.spec):
            conv: Callable[[str], Value] = {"int": int, "float": float}.get(
                self.type, _BOOL.__getitem__
            )
            return f"((?:{_TYPED[self.type]}))", conv
        return None


class Template:
    """A compiled template: `format(values) -> line` and `parse(line) -> values` (full match)."""

    def __init__(self, text: str, fields: Mapping[str, FieldCodec]) -> None:
        self.text = text
        self.fields: tuple[FieldCodec, ...] = ()
        generic: list[str] = []  # fields as `.+?`: the reference parser, and its error messages
        typed: list[str] | None = []  # fields as typed sub-patterns: the fast path
        convert: list[tuple[str, Callable[[str], Value]]] = []
        parts: list[tuple[str, FieldCodec | None]] = []
        seen: set[str] = set()
        for literal, name, spec, conversion in string.Formatter().parse(text):
            if literal:
                generic.append(re.escape(literal))
                if typed is not None:
                    typed.append(re.escape(literal))
                parts.append((literal, None))
            if name is None:
                continue
            if not name.isidentifier() or conversion:
                raise ValueError(f"template {text!r}: field {{{name}}} must be a plain name")
            if name in seen:
                raise ValueError(f"template {text!r}: field {name!r} appears twice")
            seen.add(name)
            base = fields.get(name) or FieldCodec(name, "str")
            codec = FieldCodec(name, base.type, spec or "", base.members)
            self.fields += (codec,)
            generic.append(f"(?P<{name}>.+?)")
            parts.append(("", codec))
            fast = codec.fast()
            if fast is None:
                typed = None
            elif typed is not None:
                typed.append(fast[0])
                convert.append((name, fast[1]))
        self.names: tuple[str, ...] = tuple(f.name for f in self.fields)
        self.literal: str | None = None if self.fields else text
        self._parts = parts
        self._regex = re.compile("".join(generic), re.DOTALL)
        self._fast = None if typed is None else re.compile("".join(typed), re.DOTALL)
        self._convert = tuple(convert)

    def __repr__(self) -> str:
        return f"Template({self.text!r})"

    def format(self, values: Mapping[str, Value]) -> str:
        out: list[str] = []
        for literal, codec in self._parts:
            if codec is None:
                out.append(literal)
                continue
            if codec.name not in values:
                raise ValueError(f"template {self.text!r}: no value for field {codec.name!r}")
            out.append(codec.format(values[codec.name]))
        return "".join(out)

    def matches(self, line: str) -> bool:
        return self._regex.fullmatch(line) is not None

    def parse(self, line: str) -> dict[str, Value]:
        if self._fast is not None and (fm := self._fast.fullmatch(line)) is not None:
            pairs = zip(self._convert, fm.groups(), strict=True)
            return {name: conv(text) for (name, conv), text in pairs}
        return self._parse_generic(line)

    def _parse_generic(self, line: str) -> dict[str, Value]:
        """The reference parser: `.+?` per field, then convert with a message naming the field."""
        m = self._regex.fullmatch(line)
        if m is None:
            raise ValueError(f"line {_short(line)} does not match template {self.text!r}")
        try:
            return {f.name: f.parse(m.group(f.name)) for f in self.fields}
        except ValueError as exc:
            raise ValueError(f"line {_short(line)}: {exc}") from None


@dataclass(frozen=True)
class QueryCodec:
    name: str
    request: Template
    reply: Template


@dataclass(frozen=True)
class CommandCodec:
    name: str
    request: Template
    reply: Template


class SerialCodec:
    """All templates of one profile, plus line framing (terminator and text encoding)."""

    def __init__(self, profile: SerialProfile) -> None:
        self.encoding = profile.encoding
        self.terminator_text = profile.terminator
        self.terminator = profile.terminator.encode(profile.encoding)
        types = {
            name: FieldCodec(name, v.type, members=profile.enum_table(v.enum) if v.enum else None)
            for name, v in profile.variables.items()
        }
        self.queries = {
            name: QueryCodec(name, Template(q.request, types), Template(q.reply, types))
            for name, q in profile.queries.items()
        }
        self.commands = {
            name: CommandCodec(name, Template(c.request, types), Template(c.reply, types))
            for name, c in profile.commands.items()
        }
        self.error = Template(
            profile.error_reply, {"code": FieldCodec("code", "int"), "text": FieldCodec("text", "str")}
        )

    def encode(self, line: str) -> bytes:
        """A line plus terminator; a line that would break the framing is refused."""
        if self.terminator_text in line or "\n" in line or "\r" in line:
            raise ValueError(f"line {_short(line)} contains a line break")
        try:
            return line.encode(self.encoding) + self.terminator
        except UnicodeEncodeError as exc:
            raise ValueError(f"line {_short(line)} is not {self.encoding}: {exc.reason}") from None

    def decode(self, frame: bytes) -> str:
        """Bytes of one frame (terminator optional) to text; undecodable bytes -> ValueError."""
        if frame.endswith(self.terminator):
            frame = frame[: -len(self.terminator)]
        try:
            return frame.decode(self.encoding)
        except UnicodeDecodeError as exc:
            shown = frame if len(frame) <= 80 else frame[:77] + b"..."
            raise ValueError(f"undecodable {self.encoding} bytes {shown!r}: {exc.reason}") from None

    def format_error(self, code: int, text: str) -> str:
        """The error_reply line; text is cleaned so it always fits on one line."""
        clean = " ".join(text.split()) or "refused"
        clean = clean.encode(self.encoding, "replace").decode(self.encoding)
        return self.error.format({"code": code, "text": clean})

    def parse_error(self, line: str) -> tuple[int, str] | None:
        """(code, text) if the line is an error_reply, else None."""
        try:
            values = self.error.parse(line)
        except ValueError:
            return None
        return int(values["code"]), str(values["text"])


_CACHE: dict[str, SerialCodec] = {}


def codec_for(profile: SerialProfile) -> SerialCodec:
    """The compiled codec of a profile, cached by content (profiles are frozen)."""
    key = profile.model_dump_json(exclude={"name", "description", "alarms"})
    codec = _CACHE.get(key)
    if codec is None:
        if len(_CACHE) >= 64:
            _CACHE.clear()
        codec = _CACHE[key] = SerialCodec(profile)
    return codec

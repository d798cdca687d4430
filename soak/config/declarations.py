"""Declaring settings once: a dataclass field with `setting()` carries its help, bounds,
choices and flag spelling; `Option` reads it back for flags, TOML keys, keywords and checks.

A library with nothing of soak in it: soak's own settings are in soak.config.settings.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import operator
import os
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import NoneType, UnionType
from typing import Any

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_METADATA_KEY = "soak.setting"


@dataclass(frozen=True)
class Setting:
    """What a field's name, type and default do not say about a setting."""

    help: str
    flag: str | None = None  # default: --name-with-dashes
    metavar: str | None = None
    default_text: str | None = None  # how --help shows the default, when repr() is not it
    choices: tuple[str, ...] | None = None  # each value (each item of a list) one of these
    minimum: float | None = None  # value >= minimum
    above: float | None = None  # value > above
    maximum: float | None = None  # value <= maximum
    pattern: str | None = None  # a string (each item) must match this regex in full
    parse: Callable[[Any], Any] | None = None  # raw -> value, ValueError if bad (else by type)
    aliases: tuple[str, ...] = ()  # other keys accepted in TOML files and as keywords
    repeat: bool = False  # a list flag given once per item (else one comma-separated flag)
    cli: bool = True  # a flag of `soak run` (else TOML and keywords only)
    stored: bool = True  # written to run.toml
    per_variant: bool = False  # a [[variants]] table may set it too (VariantSpec field)
    # An environment variable that gives the setting where nothing else does (for
    # schedulers: a flag, a config file key or a keyword beats it).
    env: str | None = None
    # Part of the config hash: how soak measures (traffic, swaps, settling, judging, the
    # variant's allocator). Runs that differ in it are not compared (`soak check
    # --against-history`). Off for where output goes and how it is shown, and for what is
    # under test (model, image, server and its flags): their changes are what a comparison
    # with earlier runs is for (the model is compared on its own).
    in_config_hash: bool = True


def setting(default: Any, help: str, **declaration: Any) -> Any:
    """A dataclass field that is a setting: `swaps: int = setting(12, "swaps per variant")`."""
    metadata = {_METADATA_KEY: Setting(help, **declaration)}
    if isinstance(default, list | set):
        raise TypeError("a list setting is a tuple (settings are immutable)")
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


# --- value conversion -----------------------------------------------------------------


def parse_size(text: str | int) -> int:
    """'2g', '512MiB', '1.5G', 1048576 -> bytes (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    match = _SIZE_RE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r} (e.g. 512m, 2g)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * (1 << (10 * " kmgt".index(unit or " "))))


def _to_int(raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ValueError
    return int(raw)


def _to_float(raw: Any) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError
    return value


def _to_str(raw: Any) -> str:
    if isinstance(raw, os.PathLike):
        return os.fspath(raw)
    if not isinstance(raw, str):
        raise ValueError
    return raw


def _to_bool(raw: Any) -> bool:
    if not isinstance(raw, bool):
        raise ValueError
    return raw


def to_str_tuple(raw: Any, comma_separated: bool) -> tuple[str, ...]:
    if isinstance(raw, str):
        items = [s.strip() for s in raw.split(",")] if comma_separated else [raw]
        return tuple(s for s in items if s)
    if not isinstance(raw, list | tuple) or not all(isinstance(s, str) for s in raw):
        raise ValueError
    return tuple(raw)


def _to_str_mapping(raw: Any) -> Mapping[str, str]:
    if not isinstance(raw, Mapping):
        raise ValueError
    return {str(k): str(v) for k, v in raw.items()}


_CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    int: _to_int,
    float: _to_float,
    str: _to_str,
    bool: _to_bool,
    Mapping[str, str]: _to_str_mapping,
}
_KIND_WORDS = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    bool: "true or false",
    Mapping[str, str]: "a table of strings",
}


# --- the declaration, introspected ------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """A setting as the rest of soak sees it: name, type, default and declaration."""

    name: str
    type: Any  # the field's type, e.g. int, float | None, tuple[str, ...]
    default: Any
    setting: Setting

    @property
    def optional(self) -> bool:
        return isinstance(self.type, UnionType) and NoneType in typing.get_args(self.type)

    @property
    def base_type(self) -> Any:
        """The type without `| None`."""
        if self.optional:
            rest = [t for t in typing.get_args(self.type) if t is not NoneType]
            return functools.reduce(operator.or_, rest)  # int | str | None -> int | str
        return self.type

    @property
    def is_list(self) -> bool:
        return typing.get_origin(self.base_type) is tuple

    @property
    def flag(self) -> str:
        return self.setting.flag or "--" + self.name.replace("_", "-")

    @property
    def toml_key(self) -> str:
        """The key a user writes in a --config file."""
        return (self.setting.aliases or (self.name,))[0]

    @property
    def metavar(self) -> str:
        if self.setting.metavar is not None:
            return self.setting.metavar
        if self.setting.choices is not None and not self.is_list:
            return "{" + ",".join(self.setting.choices) + "}"
        return self.name.upper()

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys this setting is given by in TOML and as a keyword."""
        return (self.name, *self.setting.aliases)

    def from_environment(self, environ: Mapping[str, str]) -> str | None:
        """The raw value the setting's environment variable gives (None: unset or empty)."""
        return (environ.get(self.setting.env) or None) if self.setting.env else None

    def convert(self, raw: Any, check: bool = True, key: str | None = None) -> Any:
        """A given value (a flag's text, a TOML value, a keyword) -> the setting's value.

        Raises ValueError with a one-line message that names the setting by
        `key` (the name the value was given by), else by its name.
        """
        label = key or self.name
        if raw is None and self.optional:
            return None
        try:
            value = self._parse(raw)
        except (ValueError, TypeError) as exc:
            detail = str(exc)
            if self.setting.parse is not None and detail:
                raise ValueError(f"{label}: {detail}") from None
            raise ValueError(f"{label} must be {self.requirement()}, not {raw!r}") from None
        if check:
            for item in value if self.is_list else (value,):
                if not self._within(item):
                    shown = item if self.is_list else raw
                    raise ValueError(f"{label} must be {self.requirement()}, not {shown!r}")
        return value

    def _parse(self, raw: Any) -> Any:
        if self.setting.parse is not None:
            return self.setting.parse(raw)
        if self.is_list:
            return to_str_tuple(raw, comma_separated=not self.setting.repeat)
        return _CONVERTERS[self.base_type](raw)

    def _within(self, value: Any) -> bool:
        s = self.setting
        if s.choices is not None and value not in s.choices:
            return False
        if s.pattern is not None and not re.fullmatch(s.pattern, str(value)):
            return False
        if isinstance(value, int | float) and not isinstance(value, bool):
            if s.minimum is not None and value < s.minimum:
                return False
            if s.above is not None and value <= s.above:
                return False
            if s.maximum is not None and value > s.maximum:
                return False
        return True

    def requirement(self) -> str:
        """What a value must be, in words: 'a whole number >= 1'."""
        s = self.setting
        if s.choices is not None:
            words = "one of " + ", ".join(s.choices)
            return f"a comma list of {words}" if self.is_list else words
        if self.is_list:
            return "a list of strings"
        if s.pattern is not None:
            return "a name (letters, digits, _ . -)"
        if s.parse is not None:
            return "valid"
        words = _KIND_WORDS.get(self.base_type, str(self.base_type))
        bounds = [
            f"{op} {_number(v)}"
            for op, v in ((">=", s.minimum), (">", s.above), ("<=", s.maximum))
            if v is not None
        ]
        return " ".join([words, " and ".join(bounds)]).strip()

    def default_text(self) -> str:
        if self.setting.default_text is not None:
            return self.setting.default_text
        if self.is_list:
            return ",".join(self.default) or "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        return "none" if self.default is None else _number(self.default)

    def help_text(self) -> str:
        """The line `soak run --help` shows: help, choices, default."""
        parts = [self.setting.help]
        if self.setting.choices is not None and self.is_list:
            parts.append(f"({', '.join(self.setting.choices)})")
        if self.toml_key.replace("_", "-") != self.flag.removeprefix("--"):
            parts.append(f"[config key {self.toml_key}]")
        if self.setting.per_variant:
            parts.append("[also per [[variants]] table]")
        if self.setting.env:
            parts.append(f"[environment {self.setting.env}]")
        parts.append(f"(default: {self.default_text()})")
        return " ".join(parts)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def options_of(cls: type) -> tuple[Option, ...]:
    """The declared settings of a dataclass, in declaration order."""
    if cls not in _OPTIONS:
        _OPTIONS[cls] = _declared(cls)
    return _OPTIONS[cls]


_OPTIONS: dict[type, tuple[Option, ...]] = {}


def _declared(cls: type) -> tuple[Option, ...]:
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        declared = f.metadata.get(_METADATA_KEY)
        if declared is not None:
            if f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()
            else:
                default = f.default
            found.append(Option(f.name, hints[f.name], default, declared))
    return tuple(found)

"""A settings mistake as one `ConfigurationError`: the variable, the value given (never a secret's), what it takes,
and the fix. Also how a setting's default is shown, here and in docs/settings.md."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import ValidationError
from pydantic.fields import FieldInfo

from consumer.core.errors import ConfigurationError, SettingsConflict
from consumer.core.settings import ALL_FIELDS, DERIVED_DEFAULTS, ENV_PREFIX, SECRET_SETTINGS, is_list_field


def settings_error(exc: ValidationError, overrides: dict[str, Any]) -> ConfigurationError:
    errors = exc.errors(include_url=False, include_input=False)
    bad = list(dict.fromkeys(str(error["loc"][0]) for error in errors if error["loc"]))
    if not bad:
        conflict = errors[0].get("ctx", {}).get("error")
        if isinstance(conflict, SettingsConflict):
            return _conflict_error(conflict)
        return ConfigurationError("the F5_WORKER_* settings do not fit together", "see docs/settings.md")
    name = bad[0]
    field = ALL_FIELDS[name]
    accepts = describe_accepted(name)
    given = _given(name, overrides)
    shown = env_name(name) if given is None else show_setting(name, repr(_clip(str(given))))
    others = f" (also invalid: {', '.join(env_name(other) for other in bad[1:])})" if bad[1:] else ""
    optional = ", or unset" if field.default is None else ""
    default = "" if field.default is None else f" for the default ({default_text(name).strip('()')})"
    return ConfigurationError(
        f"{shown} is not valid: it takes {accepts}{optional}{others}",
        f"set {env_name(name)} to {accepts}, or unset it{default}; see docs/settings.md",
    )


def _conflict_error(conflict: SettingsConflict) -> ConfigurationError:
    shown = " and ".join(show_setting(name, str(value)) for name, value in conflict.values.items())
    return ConfigurationError(f"{shown} do not fit together: {conflict.rule}", conflict.fix)


def env_name(name: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}"


def show_setting(name: str, value: str) -> str:
    """`F5_WORKER_NAME=value`, or the name alone for a secret."""
    return f"{env_name(name)} (value not shown)" if name in SECRET_SETTINGS else f"{env_name(name)}={value}"


def _given(name: str, overrides: dict[str, Any]) -> object:
    """What the user gave for a setting: the override, else the variable (names are case-insensitive)."""
    if name in overrides:
        return overrides[name]
    return next((value for key, value in os.environ.items() if key.upper() == env_name(name)), None)


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_accepted(name: str) -> str:
    """What a setting takes, in words, from its type and constraints."""
    field = ALL_FIELDS[name]
    return _describe(field.annotation, list(field.metadata))


def _describe(annotation: Any, rules: list[Any]) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        base, *extra = get_args(annotation)
        inner = [rule for item in extra for rule in (item.metadata if isinstance(item, FieldInfo) else [item])]
        return _describe(base, rules + inner)
    if origin is Literal:
        return " or ".join(str(value) for value in get_args(annotation))
    if origin is tuple:
        return 'a comma-separated list (or a JSON array of strings: ["a", "b"])'
    if get_args(annotation):  # a union: its parts, None aside (the caller says "or unset")
        parts = [arg for arg in get_args(annotation) if arg is not type(None)]
        return " or ".join(_describe(arg, rules) for arg in parts)
    if annotation is bool:
        return "true or false"
    if annotation in (int, float):
        noun = "a whole number" if annotation is int else "a number"
        return f"{noun}{_range(rules)}"
    pattern = next((rule.pattern for rule in rules if getattr(rule, "pattern", None)), None)
    if pattern:
        choices = pattern.strip("^$()").split("|")
        return ", ".join(choices[:-1]) + f" or {choices[-1]}" if len(choices) > 1 else choices[0]
    return "a path" if annotation is Path else "text"


def _range(rules: list[Any]) -> str:
    def num(value: Any) -> str:
        return str(int(value)) if float(value).is_integer() else str(value)

    low = next((f"{num(r.ge)}" for r in rules if isinstance(r, Ge)), None)
    above = next((f"{num(r.gt)}" for r in rules if isinstance(r, Gt)), None)
    high = next((f"{num(r.le)}" for r in rules if isinstance(r, Le)), None)
    below = next((f"{num(r.lt)}" for r in rules if isinstance(r, Lt)), None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    words = [
        f"of {low} or more" if low is not None else "",
        f"above {above}" if above is not None else "",
        f"up to {high}" if high is not None else "",
        f"below {below}" if below is not None else "",
    ]
    return "".join(f" {word}" for word in words if word)


def default_text(name: str) -> str:
    """A setting's default as docs/settings.md and the fix lines show it."""
    field = ALL_FIELDS[name]
    if name in DERIVED_DEFAULTS:
        return DERIVED_DEFAULTS[name][0]
    if field.default_factory is not None:
        return "(generated)"
    if name == "cache_dir":
        return "~/.cache/f5-worker"
    if is_list_field(name) and not field.default:
        return "(empty list)"
    return str(field.default)

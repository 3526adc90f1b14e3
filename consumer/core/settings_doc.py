"""docs/settings.md, generated from the settings classes: one table per class, saying which commands read it.

Regenerate with `python -m consumer.core.settings_doc` (a test keeps the file in sync).
"""

from __future__ import annotations

from pathlib import Path

from consumer.core.settings import (
    ALL_FIELDS,
    DERIVED_DEFAULTS,
    ApiSettings,
    AwsSettings,
    EngineSettings,
    FleetSettings,
    LogSettings,
    ProducerSettings,
    SettingsBase,
    VoiceCacheSettings,
    WebhookTargetSettings,
    WorkerSettings,
    is_list_field,
)
from consumer.core.settings_errors import default_text, env_name

# What reads each role's class.
ROLE_READERS: dict[type[SettingsBase], str] = {
    WorkerSettings: "`run`",
    EngineSettings: "`run`",
    ApiSettings: "`api`",
    ProducerSettings: "the producer commands (`enqueue`, `say`, `jobs`, `voices`, `status`, `dlq`)",
    FleetSettings: "`scale`",
}
# The tables, in the order of `Settings`' fields (so an error naming the first of several bad variables names the
# first in the reference): (class, title, a note after who reads it).
SECTIONS: tuple[tuple[type[SettingsBase], str, str], ...] = (
    (AwsSettings, "Common AWS", ""),
    (WebhookTargetSettings, "Common webhook targets", ""),
    (VoiceCacheSettings, "Common voice cache", ""),
    (LogSettings, "Common logging", ""),
    (ProducerSettings, "Producer", ""),
    (ApiSettings, "HTTP API", ""),
    (WorkerSettings, "Worker", " (with the engine's)"),
    (
        EngineSettings,
        "Engine",
        " (with the worker's); `voices add` without a transcript reads `asr_model`, `asr_language`, `device` and "
        "`dtype` to transcribe the clip",
    ),
    (FleetSettings, "Fleet", ""),
)


def own_fields(cls: type[SettingsBase]) -> list[str]:
    """The fields `cls` defines itself, not those of its bases."""
    inherited = {name for base in cls.__bases__ if issubclass(base, SettingsBase) for name in base.model_fields}
    return [name for name in cls.model_fields if name not in inherited]


def readers(cls: type[SettingsBase]) -> str:
    """The commands that read a class: those of every role built on it."""
    found = list(dict.fromkeys(text for role, text in ROLE_READERS.items() if issubclass(role, cls)))
    return ", ".join(found[:-1]) + f" and {found[-1]}" if len(found) > 1 else found[0]


def _table(cls: type[SettingsBase], title: str, note: str) -> list[str]:
    shared = [section.__name__ for section, _, _ in SECTIONS if section is not cls and issubclass(cls, section)]
    also = f" It also has the common fields of {', '.join(f'`{name}`' for name in shared)}." if shared else ""
    rows = [
        f"## {title} (`{cls.__name__}`)",
        "",
        f"Read by {readers(cls)}{note}.{also}",
        "",
        "| variable | default | meaning |",
        "|---|---|---|",
    ]
    for name in own_fields(cls):
        field = ALL_FIELDS[name]
        rows.append(f"| `{env_name(name)}` | `{default_text(name)}` | {field.description or ''} |")
    return [*rows, ""]


def render_settings_doc() -> str:
    """docs/settings.md, generated from the fields of `consumer/core/settings.py`."""
    fields = [name for cls, _, _ in SECTIONS for name in own_fields(cls)]
    lists = ", ".join(f"`{name}`" for name in fields if is_list_field(name))
    derived = "; ".join(f"`{name}` = `{text}`" for name, (text, _) in DERIVED_DEFAULTS.items())
    rows = [
        "# Settings reference",
        "",
        "Environment variables (prefix `F5_WORKER_`), read once at start by `consumer/core/settings.py`: one class",
        "per role, each loadable on its own. `f5-worker run` reads the worker's and the engine's, `f5-worker api` the",
        "API's, the producer commands the producer's; `local` and `init` read them all (`Settings`). The `Common`",
        "classes are shared: their fields belong to each role built on them.",
        "Cross-field rules: `heartbeat_interval_s < visibility_timeout_s`; `retry_base_delay_s <= retry_max_delay_s`;",
        "`model_dir` and `checkpoint` are exclusive (`vocab`, `architecture` go with `checkpoint`); "
        "`max_in_flight >= batch_max_size` when `max_in_flight` is a number (checked when both roles are read); "
        "`health_host` other than loopback needs `health_token`.",
        f"Defaults derived from another setting when not set: {derived}.",
        f'Lists ({lists}) are comma-separated (`a,b`); a JSON array (`["a","b"]`) works too.',
        "An invalid setting stops the command that reads it with exit code 2 and two lines: the variable, the value",
        "given (never a secret's) and what it takes; then the fix. `f5-worker run` also checks, before it loads the",
        "model, that `model_dir` exists and holds `model.json`.",
        "Regenerate with `python -m consumer.core.settings_doc`.",
        "",
    ]
    for cls, title, note in SECTIONS:
        rows += _table(cls, title, note)
    return "\n".join(rows)


if __name__ == "__main__":
    (Path(__file__).resolve().parents[2] / "docs" / "settings.md").write_text(render_settings_doc())

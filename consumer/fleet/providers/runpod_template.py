"""The RunPod pod template (deploy/runpod/pod.json): what every pod of the fleet is created with.

Its fields are the `runpod.create_pod` arguments of the same name, except `gpu_type_ids`: the GPU types tried in
order when one has no capacity. The SDK writes every string into its GraphQL mutation between quotes without
escaping them, so a quote, a backslash or a line break is refused here rather than sent.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from consumer.core.errors import ProviderError

__all__ = ["TEMPLATE_SETTING", "WORKER_ID_ENV", "PodTemplate", "load_template"]

TEMPLATE_SETTING = "F5_WORKER_FLEET_RUNPOD_TEMPLATE"
# Set by the provider on each pod (its name), as the local provider does: events and claims name the pod.
WORKER_ID_ENV = ("F5_WORKER_WORKER_ID", "F5_WORKER_FLEET_POD_ID")

_UNSAFE = re.compile(r'["\\\n\r]')
_SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|PRIVATE", re.IGNORECASE)
_SECRET_REFERENCE = re.compile(r"^\{\{\s*RUNPOD_SECRET_[A-Za-z0-9_]+\s*\}\}$")

SafeText = Annotated[str, Field(min_length=1, pattern=r'^[^"\\\n\r]+$')]


class PodTemplate(BaseModel):
    """One pod of the fleet, as `runpod.create_pod` takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_name: SafeText
    gpu_type_ids: list[SafeText] = Field(min_length=1)
    gpu_count: int = Field(1, ge=1)
    cloud_type: Literal["ALL", "SECURE", "COMMUNITY"] = "SECURE"
    container_disk_in_gb: int = Field(20, ge=1)
    volume_in_gb: int = Field(0, ge=0)
    min_vcpu_count: int = Field(1, ge=1)
    min_memory_in_gb: int = Field(1, ge=1)
    ports: str | None = Field(None, pattern=r"^\d{1,5}/(http|tcp)(,\d{1,5}/(http|tcp))*$")
    docker_args: str = Field("", pattern=r'^[^"\\\n\r]*$')
    support_public_ip: bool = False
    start_ssh: bool = False
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("gpu_type_ids")
    @classmethod
    def _distinct(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("a GPU type is listed twice")
        return ids

    @field_validator("env")
    @classmethod
    def _env(cls, env: dict[str, str]) -> dict[str, str]:
        for name, value in env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if name in WORKER_ID_ENV:
                raise ValueError(f"{name} is set by the provider (each pod's name); remove it")
            if _UNSAFE.search(value):
                raise ValueError(f"{name}: a quote, backslash or line break cannot be sent through the SDK")
            if _SECRET_NAME.search(name) and not _SECRET_REFERENCE.match(value):
                raise ValueError(f"{name} must reference a RunPod secret, {{{{ RUNPOD_SECRET_<name> }}}}, not a value")
        return env


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "the file"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def load_template(path: str | Path) -> PodTemplate:
    """The template at `path`; any problem is one line (ProviderError, config) naming the file and the setting."""
    fix = f"fix the file or set {TEMPLATE_SETTING}"
    try:
        raw = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ProviderError(f"cannot read the RunPod pod template {path}: {exc.strerror}; {fix}", config=True) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise ProviderError(f"the RunPod pod template {path} is not JSON ({reason}); {fix}", config=True) from None
    try:
        return PodTemplate.model_validate(raw)
    except ValidationError as exc:
        raise ProviderError(f"the RunPod pod template {path}: {_first_error(exc)}; {fix}", config=True) from None

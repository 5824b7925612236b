"""Request and response models of the daemon's HTTP API (version 1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from tressel.errors import ConfigError
from tressel.params import check_generate_params, check_text, check_write_options


class JobRequest(BaseModel):
    """What to generate; sent as the `request` form field beside an uploaded image."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(0, ge=0, le=2**63 - 1, description="random seed: same seed, same groom")
    format: Literal["usdc", "usda", "abc"] = Field(
        "usdc", description="usdc/usda: USD layer; abc: Alembic groom (Unreal, Maya, Blender)")
    bundle: str | None = Field(None, description="model bundle name or folder; default if empty")
    params: dict[str, Any] = Field(
        default_factory=dict, description="generation parameters (`GenerateParams` fields)"
    )
    write_options: dict[str, Any] = Field(
        default_factory=dict, description="USD writer options (`write_groom` keywords)"
    )

    # The bounds live in `tressel.params`, shared with the CLI and the pipeline; names this
    # module does not know are left to the engine, which refuses what it does not take.
    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _as_value_error(check_generate_params, value, known_only=True)

    @field_validator("write_options")
    @classmethod
    def _check_write_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _as_value_error(check_write_options, value, known_only=True)

    @field_validator("format")
    @classmethod
    def _check_format(cls, value: str) -> str:
        if value == "abc":  # refused now rather than failing after the groom is made
            from tressel.export.alembic import require_alembic

            _as_value_error(require_alembic)
        return value

    @field_validator("bundle")
    @classmethod
    def _check_bundle(cls, value: str | None) -> str | None:
        return None if value is None else _as_value_error(check_text, "bundle", value, 4096)


class PathJobRequest(JobRequest):
    """A job whose image the daemon reads itself (farm use): under an allowed root only."""

    path: str = Field(description="absolute path of the image on the daemon's machine")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _as_value_error(check_text, "path", value, 4096)


def _as_value_error(check: Any, *args: Any, **kwargs: Any) -> Any:
    """pydantic reports ValueErrors as validation errors (422), so convert ours."""
    try:
        return check(*args, **kwargs)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


class JobProgress(BaseModel):
    phase: str
    step: int
    total: int


class JobView(BaseModel):
    id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    queue_position: int | None = Field(None, description="jobs ahead of this one (0: next)")
    progress: JobProgress | None = None
    error: str | None = None
    cached: bool = False
    format: str
    bundle: str
    bundle_hash: str
    seed: int
    params: dict[str, Any]
    write_options: dict[str, Any]
    image_sha256: str
    image_name: str
    attempts: int
    device: str | None = None
    result_url: str | None = None


class JobList(BaseModel):
    jobs: list[JobView]


class ModelInfo(BaseModel):
    name: str
    path: str
    hash: str
    kind: str = ""
    bytes: int = 0
    loaded: bool = False
    default: bool = False


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["ok", "degraded", "stopping"]  # degraded: see `problems`
    version: str
    pid: int
    uptime_s: float
    devices: list[dict[str, Any]]
    memory: dict[str, int]
    queue: dict[str, int]
    limits: dict[str, Any]
    cache: dict[str, int]  # result layers stored now: {"layers": n, "bytes": b}
    workers: list[dict[str, Any]] = Field(
        default_factory=list, description="per device: state, job, since, alive")
    problems: list[str] = Field(
        default_factory=list, description="what is wrong (dead or stuck worker, full disk)")
    disk_free_bytes: int | None = None  # on the state folder's filesystem


class Problem(BaseModel):
    """RFC 9457 problem details: `detail` tells the user what to do."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str

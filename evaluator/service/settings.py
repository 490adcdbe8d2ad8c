"""Settings of ``imagejury serve``: the ``[server]`` section of the config file, plus env.

Precedence (later wins): defaults → ``[server]`` in the TOML config → environment
(``IMAGEJURY_TOKENS``, ``IMAGEJURY_WEBHOOK_SECRET``) → command-line flags.

Org ids: the API's ``org_id`` is a uuid, tokens name an org. An org name maps to
``uuid5(NAMESPACE_URL, "imagejury:org:" + name)`` — stable across restarts and
machines, so the same token config gives the same ids everywhere. A name that is
already a uuid is used as is.

Defaults and why:
- ``max_queue_depth`` 1000 pending jobs: at ~5 images/s on one GPU that is a few
  minutes of work; past it clients get 429 + Retry-After instead of an ever-growing queue.
- ``batch_size`` 16 / ``batch_max_wait_s`` 0.25: one GPU batch as in the batch runner;
  waiting a quarter second to fill it costs little next to a ViT-L forward pass.
- ``lease_seconds`` 30, renewed every ``lease_seconds / 3`` while a job runs: a crashed
  worker's jobs are back in the queue within 30 s of the crash.
- ``job_timeout_s`` 600: a job not finished 10 minutes after submission ends
  ``failed`` / ``timed_out``.
- webhooks: 8 attempts, backoff 5 s doubling to at most 1 h with jitter (≈ 17 min of
  retries before the 8th), 10 s per attempt — in the spirit of the Standard Webhooks
  guidance (retry with exponential backoff, give up eventually).
- ``idempotency_ttl_s`` 24 h, as the hosted service documents for its keys.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import math
import os
import re
import uuid
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from imagejury.core.schema import COST_PATTERN, JobClass
from imagejury.errors import ConfigError

_COST_RE = re.compile(COST_PATTERN)
_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,512}$")
TOKEN_RULE = "8-512 characters of letters, digits or ._~+/=-"
ORG_NAMESPACE_PREFIX = "imagejury:org:"
TOKENS_ENV = "IMAGEJURY_TOKENS"
SECRET_ENV = "IMAGEJURY_WEBHOOK_SECRET"


class SettingsError(ConfigError):
    """A bad ``[server]`` key, flag, ``IMAGEJURY_TOKENS`` or ``IMAGEJURY_WEBHOOK_SECRET``,
    said in one sentence that names the key and where it came from — never its value
    (a token or a secret must not end up in a terminal, a log or a CI transcript)."""


def org_uuid(name: str) -> str:
    """The API org id for an org name: the name itself if it is a uuid, else uuid5 of it."""
    try:
        return str(uuid.UUID(name))
    except ValueError:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, ORG_NAMESPACE_PREFIX + name))


def parse_tokens(text: str) -> dict[str, str]:
    """``"tok1=org1,tok2=org2"`` → ``{"tok1": "org1", ...}``; ValueError on a bad entry.

    Messages name the entry by its position and org, never by its token."""
    out: dict[str, str] = {}
    for n, part in enumerate((p.strip() for p in text.split(",")), start=1):
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"{TOKENS_ENV}: entry {n} has no '=' (each entry must look like TOKEN=ORG)")
        tok, org = (s.strip() for s in part.rsplit("=", 1))
        if not tok or not org:
            raise ValueError(f"{TOKENS_ENV}: entry {n} has an empty token or org (each entry must look like TOKEN=ORG)")
        if not _TOKEN_RE.match(tok):
            raise ValueError(f"{TOKENS_ENV}: the token of entry {n} (org {org!r}) must be {TOKEN_RULE}")
        out[tok] = org
    return out


def check_webhook_secret(value: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; ValueError if it is not one."""
    if not value.startswith("whsec_"):
        raise ValueError("webhook secret must look like whsec_<base64> (Standard Webhooks)")
    try:
        key = base64.b64decode(value[len("whsec_") :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret: the part after whsec_ is not valid base64") from None
    if len(key) < 16:
        raise ValueError("webhook secret is too short: use at least 16 random bytes (24-64 recommended)")
    return key


class ServerSettings(BaseModel):
    """Everything the service reads at start; a typo in ``[server]`` is an error."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    db_path: Path = Field(Path("imagejury.db"), description="SQLite store; created on first start")
    asset_dir: Path | None = Field(None, description="uploaded assets; default: '<db_path>.assets' beside the db")
    tokens: dict[str, str] = Field(
        default_factory=dict, repr=False, description="bearer token -> org name (or uuid); 8+ characters each"
    )
    webhook_secret: str | None = Field(None, repr=False, description="whsec_<base64>; needed to accept callback_url")
    prices: dict[str, str] = Field(
        default_factory=lambda: {"standard": "0", "quick": "0"},
        description="job class -> price per evaluation as a decimal string (frozen on each evaluation at submission)",
    )
    currency: str = Field("USD", min_length=3, max_length=3)
    max_queue_depth: int = Field(1000, ge=1, description="pending jobs past which POST answers 429")
    org_queue_share: float | None = Field(
        None,
        gt=0,
        le=1,
        description="the share of max_queue_depth one org's pending jobs may fill (429 past it); "
        "default 0.5 when two or more orgs have tokens (one org cannot starve the rest), 1 with one org",
    )
    retry_after_s: int = Field(5, ge=1, le=3600, description="Retry-After on 429")
    thumbnail_px: int = Field(
        192, ge=0, le=1024, description="longest side of the JPEG kept per evaluation for the review page; 0 keeps none"
    )
    request_header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a request head (line + headers) must arrive within this (else 408)"
    )
    request_body_timeout_s: float = Field(
        60.0, gt=0, le=3600, description="a request body must arrive within this from its first byte (else 408)"
    )
    max_body_bytes: int = Field(13_000_000, ge=1024, description="request body cap (a 12M-char data URI fits)")
    batch_size: int = Field(16, ge=1, le=1024)
    batch_max_wait_s: float = Field(0.25, ge=0, le=60)
    poll_interval_s: float = Field(0.2, gt=0, le=10, description="how often an idle worker looks for jobs")
    lease_seconds: float = Field(30.0, gt=0, description="a claimed job's lease; renewed every lease/3 while running")
    job_timeout_s: float = Field(600.0, gt=0, description="submission to terminal; past it the job ends timed_out")
    decode_threads: int = Field(4, ge=1, le=64)
    warmup_job_classes: list[JobClass] = Field(default_factory=lambda: [JobClass.standard, JobClass.quick])
    webhook_max_attempts: int = Field(8, ge=1, le=50)
    webhook_backoff_base_s: float = Field(5.0, gt=0)
    webhook_backoff_max_s: float = Field(3600.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0, le=120)
    webhook_tolerance_s: int = Field(300, ge=1, description="verify(): max age of a webhook timestamp")
    allow_loopback_callbacks: bool = Field(False, description="local testing only: callbacks to 127/8 and ::1")
    idempotency_ttl_s: int = Field(86_400, ge=60)
    admission_stale_s: float = Field(60.0, gt=0, description="an idempotency key stuck 'admitting' this long is freed")
    sqlite_pool_size: int = Field(
        8, ge=2, le=64, description="SQLite connections per process, shared by every thread (bounded: no fd leak)"
    )
    sqlite_synchronous: str = Field("FULL", pattern="^(FULL|NORMAL)$", description="FULL: committed = on disk")
    embedded_worker: bool = Field(True, description="serve runs a worker thread; false = API only")

    @field_validator("tokens")
    @classmethod
    def _tokens_ok(cls, value: dict[str, str]) -> dict[str, str]:
        for tok, org in value.items():
            if not _TOKEN_RE.match(tok):
                raise ValueError(f"the token of org {org!r} must be {TOKEN_RULE}")
            if not org.strip():
                raise ValueError("each token needs an org name")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_ok(cls, value: str | None) -> str | None:
        if value is not None:
            check_webhook_secret(value)
        return value

    @field_validator("prices")
    @classmethod
    def _prices_ok(cls, value: dict[str, str]) -> dict[str, str]:
        known = {j.value for j in JobClass}
        out = {"standard": "0", "quick": "0"}
        for jc, price in value.items():
            if jc not in known:
                raise ValueError(f"prices: unknown job class {jc!r} (known: {sorted(known)})")
            price = str(price)
            if not _COST_RE.match(price):
                raise ValueError(f"prices.{jc}: {price!r} is not a decimal string like '0.012'")
            try:
                if Decimal(price) < 0:
                    raise ValueError(f"prices.{jc}: must not be negative")
            except InvalidOperation:
                raise ValueError(f"prices.{jc}: {price!r} is not a decimal number") from None
            out[jc] = price
        return out

    @model_validator(mode="after")
    def _backoff_ok(self) -> ServerSettings:
        if self.webhook_backoff_max_s < self.webhook_backoff_base_s:
            raise ValueError("webhook_backoff_max_s must be >= webhook_backoff_base_s")
        return self

    # -- derived -------------------------------------------------------------------
    @property
    def assets_path(self) -> Path:
        return self.asset_dir or self.db_path.with_name(self.db_path.name + ".assets")

    @property
    def webhook_key(self) -> bytes | None:
        return check_webhook_secret(self.webhook_secret) if self.webhook_secret else None

    def org_queue_limit(self) -> int:
        """Pending jobs one org may have: its share of the queue, at least one."""
        orgs = len(set(self.org_for_token().values()))
        share = self.org_queue_share if self.org_queue_share is not None else (0.5 if orgs > 1 else 1.0)
        return max(1, math.ceil(self.max_queue_depth * share))

    def org_for_token(self) -> dict[str, str]:
        """token → org uuid (string)."""
        return {tok: org_uuid(org) for tok, org in self.tokens.items()}

    @classmethod
    def load(
        cls,
        section: dict[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        source: str | None = None,
        **overrides: Any,
    ) -> ServerSettings:
        """Build from the config's ``[server]`` dict, the environment and flag overrides.

        ``source`` names the config file in messages. Raises SettingsError (one sentence
        naming the key and where it came from; never a value)."""
        environ: Mapping[str, str] = os.environ if env is None else env
        data = dict(section or {})
        origins = {k: f"[server].{k} in {source or 'the config file'}" for k in data}
        if environ.get(TOKENS_ENV):
            try:
                data["tokens"] = {**dict(data.get("tokens") or {}), **parse_tokens(environ[TOKENS_ENV])}
            except ValueError as exc:
                raise SettingsError(str(exc)) from None
            origins["tokens"] = f"{TOKENS_ENV} or [server].tokens in {source or 'the config file'}"
        if environ.get(SECRET_ENV):
            data["webhook_secret"] = environ[SECRET_ENV]
            origins["webhook_secret"] = SECRET_ENV
        given = {k: v for k, v in overrides.items() if v is not None}
        data.update(given)
        origins.update({k: f"the command-line value of {k}" for k in given})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            origins[""] = f"[server] in {source or 'the config file'}"
            raise SettingsError(describe_errors(exc, origins, known=sorted(cls.model_fields))) from None


def describe_errors(exc: ValidationError, origins: dict[str, str], known: list[str], section: str = "server") -> str:
    """One plain sentence for pydantic's errors: the key, where it came from, what is wrong.

    Built from each error's location and message only — pydantic's own text repeats the
    input value, which for ``tokens`` or ``webhook_secret`` is the secret itself. With
    ``section=""`` the location is shown whole (``models.clip``) and no origin is looked up."""
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        key = loc[0] if loc else ""
        if key == "tokens":  # a dict key here is a token: name the field, never the entry
            loc = loc[:1]
        if section:
            where = origins.get(key) or origins.get("") or f"[{section}].{key}"
            sub = f" ({'.'.join(loc[1:])})" if len(loc) > 1 else ""
        else:
            where, sub = ".".join(loc) or "config", ""
        if err.get("type") == "extra_forbidden":
            parts.append(f"{where}: unknown key{_did_you_mean(loc[-1] if loc else '', known)}")
        else:
            parts.append(f"{where}{sub}: {str(err.get('msg', 'invalid')).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _did_you_mean(key: str, known: list[str]) -> str:
    if not known:
        return ""
    near = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean {near[0]!r}?)" if near else f" (known keys: {', '.join(known)})"

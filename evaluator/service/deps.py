"""Route dependencies, the way FastAPI's full-stack template writes them: each reads one
thing ``create_app`` put on ``request.app.state`` and is used as an ``Annotated`` alias,
so a route's signature says what it needs (``store: StoreDep, who: PrincipalDep``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from imagejury.core.config import EvaluatorConfig
from imagejury.service.admission import Admission
from imagejury.service.auth import Principal, bearer_scheme, principal_from
from imagejury.service.metrics import Metrics
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Store


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_settings(request: Request) -> ServerSettings:
    return request.app.state.settings


def get_config(request: Request) -> EvaluatorConfig:
    return request.app.state.config


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_admission(request: Request) -> Admission:
    return request.app.state.admission


def get_worker(request: Request) -> Any:
    """The embedded worker, or None when the workers run as separate processes."""
    return request.app.state.worker


def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> Principal:
    """The caller's org, from its bearer token (401 when missing or unknown)."""
    return principal_from(request, credentials)


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[ServerSettings, Depends(get_settings)]
ConfigDep = Annotated[EvaluatorConfig, Depends(get_config)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
AdmissionDep = Annotated[Admission, Depends(get_admission)]
WorkerDep = Annotated[Any, Depends(get_worker)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]

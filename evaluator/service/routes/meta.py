"""The API's small vocabularies: job classes (with the operator's prices) and statuses.

Included before the evaluations router: ``/v1/evaluations/job-classes`` must match
before ``/v1/evaluations/{evaluation_id}``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from imagejury.core.schema import JobClass, Status
from imagejury.service.deps import PrincipalDep, SettingsDep
from imagejury.service.schemas import AUTH_ERRORS, JOB_CLASS_INFO, STATUS_INFO, JobClassList, StatusList

router = APIRouter(prefix="/v1/evaluations", tags=["evaluations"])


@router.get(
    "/job-classes",
    response_model=JobClassList,
    summary="Job classes and their prices (the operator's figures)",
    responses=AUTH_ERRORS,
)
def job_classes(who: PrincipalDep, settings: SettingsDep) -> JSONResponse:
    data = [
        {
            "code": jc.value,
            "price": settings.prices.get(jc.value, "0"),
            "currency": settings.currency,
            "description": JOB_CLASS_INFO[jc.value],
        }
        for jc in JobClass
    ]
    return JSONResponse({"data": data})


@router.get("/statuses", response_model=StatusList, summary="The evaluation status enum", responses=AUTH_ERRORS)
def statuses(who: PrincipalDep) -> JSONResponse:
    data = [
        {"code": s.value, "terminal": STATUS_INFO[s.value][0], "description": STATUS_INFO[s.value][1]} for s in Status
    ]
    return JSONResponse({"data": data})

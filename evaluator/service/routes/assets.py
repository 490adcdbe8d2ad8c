"""Asset uploads: an image stored under the caller's org, used as ``runflow://assets/{uuid}``."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from imagejury.core.config import EvaluatorConfig
from imagejury.errors import InvalidMediaError
from imagejury.service.api_errors import ApiError
from imagejury.service.bodies import read_capped
from imagejury.service.deps import ConfigDep, PrincipalDep, SettingsDep, StoreDep
from imagejury.service.schemas import AUTH_ERRORS, ERR, AssetOut
from imagejury.service.settings import ServerSettings
from imagejury.service.store import Store, to_dt

router = APIRouter(prefix="/v1/asset-uploads", tags=["assets"])

_EXT = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}
_MULTIPART_SLACK = 64 * 1024  # multipart framing on top of the image cap
_BINARY = {"schema": {"type": "string", "format": "binary"}}
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "image/png": _BINARY,
        "image/jpeg": _BINARY,
        "image/webp": _BINARY,
    },
}


async def _multipart_file(request: Request, body: bytes) -> bytes:
    request._body = body  # noqa: SLF001 - let Starlette's form parser read what we already capped
    try:
        form = await request.form(max_files=1, max_fields=8)
    except Exception as exc:  # noqa: BLE001 - malformed multipart is the client's error
        raise ApiError(422, f"body: malformed multipart form ({type(exc).__name__})") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise ApiError(422, "file: a multipart field named 'file' with the image is required")
    data = await upload.read()
    await form.close()
    return data


@router.post(
    "",
    status_code=201,
    response_model=AssetOut,
    summary="Upload an image; use the returned runflow://assets/{uuid} as an image URL",
    responses={413: ERR, 415: ERR, 422: ERR, **AUTH_ERRORS},
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def upload_asset(
    request: Request, who: PrincipalDep, store: StoreDep, settings: SettingsDep, config: ConfigDep
) -> JSONResponse:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await read_capped(request, config.media.max_bytes + _MULTIPART_SLACK)
    if ctype == "multipart/form-data":
        data = await _multipart_file(request, body)
    elif ctype.startswith("image/") or ctype == "application/octet-stream":
        data = body
    else:
        raise ApiError(
            415,
            "content-type: send multipart/form-data with a 'file' field, or the image bytes as image/png, image/jpeg or image/webp",
        )
    answer = await run_in_threadpool(store_asset, store, settings, config, who.org_id, data)
    return JSONResponse(answer, status_code=201)


def store_asset(
    store: Store, settings: ServerSettings, config: EvaluatorConfig, org_id: str, data: bytes
) -> dict[str, Any]:
    """Decode (within the media limits), write the file atomically, record it; the API's answer."""
    from imagejury.core.intake.media import MediaLimits, decode_image_bytes

    m = config.media
    try:
        decoded = decode_image_bytes(
            data, MediaLimits(max_pixels=m.max_pixels, max_bytes=m.max_bytes), source_kind="asset", field="file"
        )
    except InvalidMediaError as exc:
        raise ApiError(422, exc.detail) from None
    ext, ctype = _EXT[decoded.format]
    asset_id = str(uuid.uuid4())
    folder = settings.assets_path / org_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{asset_id}.{ext}"
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    created = store.add_asset(asset_id, org_id, str(path.resolve()), ctype, len(data), decoded.key)
    w, h = decoded.original_size
    return {
        "id": asset_id,
        "url": f"runflow://assets/{asset_id}",
        "content_type": ctype,
        "size_bytes": len(data),
        "width": w,
        "height": h,
        "sha256": decoded.key,
        "created_at": to_dt(created).isoformat().replace("+00:00", "Z"),  # type: ignore[union-attr]
    }

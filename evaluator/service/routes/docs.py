"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) from files this server serves itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, so they are blank on an
offline box — the very box this service is made for. The assets come from the
``fastapi-offline`` package (MIT; it ships the Swagger UI bundle, Apache-2.0, and the
ReDoc standalone bundle, MIT) and are served under ``/docs-assets/``. Without that
package both pages fall back to a plain local page listing the operations, with a link
to ``/openapi.json``."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from imagejury.service.api_errors import ApiError

router = APIRouter(include_in_schema=False)

ASSETS_URL = "/docs-assets"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def assets_dir() -> Path | None:
    """The folder of the bundled Swagger UI / ReDoc files, or None without fastapi-offline."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).parent / "static"
    return folder if all((folder / name).is_file() for name in _ASSETS) else None


def _plain_page(request: Request, title: str) -> HTMLResponse:
    """A page listing the operations, for a box without the bundled assets."""
    schema = request.app.openapi()
    rows = "".join(
        f"<li><code>{html.escape(method.upper())} {html.escape(path)}</code> — {html.escape(op.get('summary', ''))}</li>"
        for path, ops in schema.get("paths", {}).items()
        for method, op in ops.items()
        if isinstance(op, dict)
    )
    body = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
        f"<h1>{html.escape(schema['info']['title'])} {html.escape(schema['info']['version'])}</h1>"
        "<p>The interactive pages need the <code>fastapi-offline</code> package (install the "
        "<code>server</code> extra). The full document: <a href='/openapi.json'>/openapi.json</a>.</p>"
        f"<ul>{rows}</ul></body></html>"
    )
    return HTMLResponse(body)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    title = request.app.title + " - Swagger UI"
    if assets_dir() is None:
        return _plain_page(request, title)
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=title,
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    title = request.app.title + " - ReDoc"
    if assets_dir() is None:
        return _plain_page(request, title)
    return get_redoc_html(
        openapi_url=request.app.openapi_url,
        title=title,
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
        with_google_fonts=False,
    )


@router.get(ASSETS_URL + "/{name}")
def docs_asset(name: str) -> FileResponse:
    folder = assets_dir()
    if folder is None or name not in _ASSETS:  # a fixed list: no path from the URL reaches the disk
        raise ApiError(404, f"{name}: no such documentation asset")
    return FileResponse(folder / name, media_type=_ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

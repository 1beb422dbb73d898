"""The clinician chat page at `/`: static files bundled in this package.

Everything the page needs ships here (the hospital network has no internet, so no CDN).
The page holds no data of its own: it signs in through `POST /v1/sessions` and talks
to the same `/v1` API as every other client, so it gets no privileges an API client
lacks. A strict Content-Security-Policy allows only this origin's scripts and styles,
which is what keeps a session token out of reach of injected markup.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

UI_DIR = Path(str(files("medgo_gateway") / "ui"))
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def chat_page() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=PAGE_HEADERS)


class _HeaderedStaticFiles(StaticFiles):
    """Static files with the page's security headers on every response, so
    `/ui/index.html` (or any file under `/ui/`) is as locked down as `/`."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def mount_ui(app: FastAPI) -> None:
    """The page at `/`, its scripts and styles under `/ui/`."""
    app.include_router(router)
    app.mount("/ui", _HeaderedStaticFiles(directory=UI_DIR), name="ui")

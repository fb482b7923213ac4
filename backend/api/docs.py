"""The API's documentation, served by the backend alone: a bastion host has no internet, and a
page that loads scripts from a CDN would trust that CDN with the operator's session.

``/openapi.json`` is the OpenAPI document; ``/docs`` is one self-contained HTML page listing every
operation (method, path, summary) with no script, style sheet or image from anywhere. Both need a
token, like the API they describe.
"""

from __future__ import annotations

from html import escape
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

from backend.api.auth import require_actor

METHODS = ("get", "post", "put", "patch", "delete")


def docs_page(openapi: dict[str, Any]) -> str:
    """The operations of ``openapi`` as a plain HTML table."""
    info = openapi.get("info", {})
    rows = []
    for path, operations in openapi.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is not None:
                summary = operation.get("summary") or operation.get("description") or ""
                rows.append(
                    f"<tr><td>{method.upper()}</td><td><code>{escape(path)}</code></td>"
                    f"<td>{escape(summary.splitlines()[0] if summary else '')}</td></tr>"
                )
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{escape(info.get('description', ''))}</p>"
        "<p>Every operation needs <code>Authorization: Bearer &lt;token&gt;</code>. "
        "The full schema: <a href='/openapi.json'>/openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>summary</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )


def add_docs_routes(app: FastAPI) -> None:
    """``/openapi.json`` and ``/docs``, behind authentication (FastAPI's own are turned off)."""
    authenticated = [Depends(require_actor)]

    @app.get("/openapi.json", include_in_schema=False, dependencies=authenticated)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=authenticated)
    async def docs() -> HTMLResponse:
        return HTMLResponse(
            docs_page(app.openapi()),
            headers={"Content-Security-Policy": "default-src 'none'"},
        )

"""GET /openapi.json (OpenAPI 3.0: app/openapi.yaml, with the Record schema taken from the same feature schema that
validates requests and a synthetic example built from it: mlcore.example) and GET /docs (Swagger UI, its files
served by this app: works offline).
"""

from __future__ import annotations

import copy
import html
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, abort, current_app, send_from_directory

from app.api import json_response, published_example, state

bp = Blueprint("docs", __name__)

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", docExpansion: "full",
                                 deepLinking: true, validatorUrl: null});
  </script>
</body>
</html>
"""


SPEC_FILE = Path(__file__).parent / "openapi.yaml"


@cache
def _static_spec() -> dict[str, Any]:
    """openapi.yaml, read once per process (on the first GET /openapi.json, not at import)."""
    return yaml.safe_load(SPEC_FILE.read_text(encoding="utf-8"))


def openapi_spec(
    record_schema: dict[str, Any],
    example: dict[str, Any] | None,
    max_batch: int,
    model_version: str,
    title: str | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """openapi.yaml with the parts that depend on the loaded model filled in."""
    spec = copy.deepcopy(_static_spec())
    spec["info"]["version"] = model_version
    if title:
        spec["info"]["title"] = title
    if description:
        spec["info"]["description"] = f"{description.strip()} {spec['info']['description']}"
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    body["schema"]["oneOf"][1]["maxItems"] = max_batch
    if example:
        body["examples"] = {
            "one": {"summary": "One record", "value": example},
            "batch": {"summary": "A batch", "value": [example, example]},
        }
    spec["components"]["schemas"]["Record"] = record_schema
    return spec


@bp.get("/openapi.json")
def openapi() -> Response:
    st = state()
    spec = st.extra.get("openapi")
    if spec is None:
        model = st.model
        example = published_example(model) if model.ready else None
        record = (
            model.validator.json_schema(example)
            if model.validator is not None
            else {"type": "object", "description": "no model loaded: see GET /ready"}
        )
        spec = st.extra["openapi"] = openapi_spec(
            record, example, st.config["MAX_BATCH"], model.model_version, model.title, model.description
        )
    return json_response(spec)


@bp.get("/docs")
def docs_page() -> Response:
    title = state().model.title or _static_spec()["info"]["title"]
    # str.replace, not str.format: the page's script has braces of its own
    return Response(DOCS_PAGE.replace("{title}", html.escape(title)), mimetype="text/html")


# The only files of the vendored Swagger UI that DOCS_PAGE loads: its other pages (index.html,
# oauth2-redirect.html) and source maps are not served.
DOCS_FILES = frozenset({"swagger-ui.css", "swagger-ui-bundle.js"})


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str) -> Response:
    from swagger_ui_bundle import swagger_ui_path

    if filename not in DOCS_FILES:
        abort(404)
    return send_from_directory(
        swagger_ui_path, filename, max_age=current_app.config.get("DOCS_MAX_AGE", 3600)
    )

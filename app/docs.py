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
from app.protocols.common import DEFAULT_MODEL_NAME, served_name
from app.protocols.kserve import input_datatypes, v2_tensors

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
    model_name: str = DEFAULT_MODEL_NAME,
    vertex_routes: dict[str, str] | None = None,
    datatypes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """openapi.yaml with the parts that depend on the loaded model filled in. `vertex_routes` maps "predict" and
    "health" to the paths AIP_PREDICT_ROUTE and AIP_HEALTH_ROUTE name (only those set); `datatypes` are the
    features' V2 datatypes (for the V2 example)."""
    spec = copy.deepcopy(_static_spec())
    spec["info"]["version"] = model_version
    if title:
        spec["info"]["title"] = title
    if description:
        spec["info"]["description"] = f"{description.strip()} {spec['info']['description']}"
    vertex = spec.pop("x-vertex-paths")
    for kind, route in (vertex_routes or {}).items():
        spec["paths"].setdefault(route, {}).update(vertex[kind])
    schemas = spec["components"]["schemas"]
    schemas["Record"] = record_schema
    schemas["Records"]["maxItems"] = max_batch
    spec["components"]["parameters"]["ModelName"]["schema"]["enum"] = [model_name]
    if example:
        _add_examples(spec["paths"], example, vertex_routes or {}, datatypes or {})
    return spec


def _add_examples(
    paths: dict[str, Any], example: dict[str, Any], vertex_routes: dict[str, str], datatypes: dict[str, str]
) -> None:
    """The model's example record in each route's body shape: one and a batch for /predict, a batch elsewhere."""
    batch = [example, example]
    bodies = {
        ("/predict", "one"): example,
        ("/predict", "batch"): batch,
        ("/invocations", "dataframe_records"): {"dataframe_records": batch},
        ("/v1/models/{name}:predict", "batch"): {"instances": batch},
    }
    if datatypes:
        bodies[("/v2/models/{name}/infer", "batch")] = {"inputs": v2_tensors(batch, datatypes)}
    if "predict" in vertex_routes:
        bodies[(vertex_routes["predict"], "batch")] = {"instances": batch}
    for (path, key), value in bodies.items():
        content = paths[path]["post"]["requestBody"]["content"]["application/json"]
        content.setdefault("examples", {})[key] = {
            "summary": key.replace("_", " ").capitalize(),
            "value": value,
        }


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
        config = st.config
        vertex_routes = {
            kind: config[key]
            for kind, key in (("predict", "AIP_PREDICT_ROUTE"), ("health", "AIP_HEALTH_ROUTE"))
            if config.get(key)
        }
        spec = st.extra["openapi"] = openapi_spec(
            record,
            example,
            config["MAX_BATCH"],
            model.model_version,
            model.title,
            model.description,
            served_name(model) if model.ready else DEFAULT_MODEL_NAME,
            vertex_routes,
            input_datatypes(model) if model.validator is not None else None,
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

"""OpenAPI spec and docs page: the spec validates like the API does (property-based fuzz), and the docs page
renders offline in a real headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from werkzeug.serving import make_server

from app import create_app
from mlcore.artifact import load_model, save_model


@pytest.fixture(scope="module")
def fuzz_app(model_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz")
    app = create_app(
        {
            "MODEL_DIR": str(model_dir),
            "PREDICTION_LOG_URL": f"sqlite:///{path}/log.db",
            "MAX_BATCH": 20,
            "AIP_PREDICT_ROUTE": "/vertex/predict",
            "AIP_HEALTH_ROUTE": "/vertex/health",
        }
    )
    yield app
    app.extensions["serve"].log.close()


def test_openapi_record_schema_comes_from_the_model(client, app):
    spec = client.get("/openapi.json").get_json()
    record = spec["components"]["schemas"]["Record"]
    published = client.get("/metadata").get_json()["example"]
    assert record["example"] == published
    assert record["additionalProperties"] is False
    assert record["properties"]["contract"]["enum"] == ["month-to-month", "one-year", "two-year"]
    assert record["properties"]["total_charges"]["nullable"] is True
    assert "total_charges" not in record["required"] and "tenure_months" in record["required"]
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["examples"]["one"]["value"] == published
    # the documented example is accepted by the API
    assert client.post("/predict", json=body["examples"]["batch"]["value"]).status_code == 200


def test_every_documented_example_is_accepted_by_its_route(fuzz_app):
    """Each route's example body (the model's example in that route's shape: MLflow's, KServe V1 and V2,
    Vertex AI's) is answered 200 with one prediction per record, and the model name is the served one."""
    client = fuzz_app.test_client()
    spec = client.get("/openapi.json").get_json()
    name = spec["components"]["parameters"]["ModelName"]["schema"]["enum"][0]
    assert name == fuzz_app.extensions["serve"].model.metadata["project"]["name"]
    sent = set()
    for path, item in spec["paths"].items():
        content = item.get("post", {}).get("requestBody", {}).get("content", {}).get("application/json", {})
        for key, example in content.get("examples", {}).items():
            response = client.post(path.replace("{name}", name), json=example["value"])
            assert response.status_code == 200, (path, key, response.get_json())
            sent.add(path)
    assert sent >= {"/predict", "/invocations", "/v1/models/{name}:predict", "/v2/models/{name}/infer"}
    assert "/vertex/predict" in sent


def served_with_project(model_dir, dest, project):
    """The tiny model re-sealed with metadata.json `project` set to `project` (None: without the field)."""
    estimator, metadata = load_model(model_dir)
    metadata.pop("project", None)
    if project is not None:
        metadata["project"] = project
    save_model(estimator, metadata, dest / "model")
    return create_app(
        {"MODEL_DIR": str(dest / "model"), "PREDICTION_LOG_URL": f"sqlite:///{dest}/log.db", "TESTING": True}
    )


def test_the_api_title_and_description_come_from_the_models_project(model_dir, tmp_path):
    project = {"name": "acme", "title": "Acme <risk> API", "description": "Scores loan applications."}
    client = served_with_project(model_dir, tmp_path, project).test_client()
    info = client.get("/openapi.json").get_json()["info"]
    assert info["title"] == "Acme <risk> API"
    assert info["description"].startswith("Scores loan applications. Records are validated against")
    assert "<title>Acme &lt;risk&gt; API</title>" in client.get("/docs").get_data(as_text=True)


def test_a_model_without_a_project_gets_the_generic_title(model_dir, tmp_path):
    client = served_with_project(model_dir, tmp_path, None).test_client()
    assert client.get("/ready").status_code == 200
    assert client.get("/openapi.json").get_json()["info"]["title"] == "Model API"
    assert "<title>Model API</title>" in client.get("/docs").get_data(as_text=True)


def test_api_conforms_to_its_spec(fuzz_app):
    """Property-based fuzz from /openapi.json (schemathesis): for every operation, generated requests (valid, and
    invalid for the POSTs) get no 5xx; invalid ones get a 4xx; every status, content type and body is as the spec
    says. Bounded: 20 examples per operation and mode."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/feedback", "/ready", "/metadata", *PLATFORM_PATHS}
    assert {"/vertex/predict", "/vertex/health"} <= {op.path for op in operations}  # AIP_* routes documented
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE)
        if operation.method.upper() == "POST" or "{name}" in operation.path:  # the rest take no input
            _fuzz(operation, GenerationMode.NEGATIVE)


# The platforms' routes (app/protocols), each documented in /openapi.json
PLATFORM_PATHS = {
    "/invocations",
    "/ping",
    "/v1/models/{name}",
    "/v1/models/{name}:predict",
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/models/{name}",
    "/v2/models/{name}/ready",
    "/v2/models/{name}/infer",
}
# Bodies whose validity JSON Schema cannot express (a dataframe_split row holds one value per column, in order; a
# V2 tensor holds the values of its feature's type, all of one length): schema-valid ones may get a 422 there.
POSITIONAL_BODIES = {"/invocations", "/v2/models/{name}/infer"}


def _fuzz(operation, mode: GenerationMode) -> None:
    # schemathesis' own negative-data check does not count 413 as a rejection; the spec documents it
    excluded = [negative_data_rejection]
    if operation.path in POSITIONAL_BODIES:
        excluded.append(positive_data_acceptance)

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call_and_validate(excluded_checks=excluded)
        if mode is GenerationMode.NEGATIVE:
            assert 400 <= response.status_code < 500, (response.status_code, case.body)

    check()


@pytest.fixture
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium not found: install Debian's chromium (.ci/run does)"
    return found


@pytest.mark.slow
def test_docs_page_renders_predict_and_its_example_in_chromium(live_server, app, tmp_path):
    dom = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{live_server}/docs",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "swagger-ui" in dom and app.extensions["serve"].model.title in dom
    assert "/predict" in dom and "Predict for one record or a batch" in dom
    example = app.extensions["serve"].model.example
    assert f"{example['contract']}" in dom and "tenure_months" in dom  # the example request body is shown


@pytest.mark.parametrize(
    "filename",
    ["index.html", "oauth2-redirect.html", "swagger-ui-bundle.js.map", "swagger-ui.css.map", "swagger-ui.js"],
)
def test_only_the_swagger_files_the_docs_page_loads_are_served(client, filename):
    assert client.get("/docs/static/swagger-ui-bundle.js").status_code == 200
    assert client.get("/docs/static/swagger-ui.css").status_code == 200
    response = client.get(f"/docs/static/{filename}")
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "not_found")

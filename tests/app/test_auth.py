"""Bearer tokens on /predict and /feedback (app/auth.py): open by default, 401 with a challenge when a token is
missing or wrong, constant-time comparison, the client's name (never its token) stored with each label."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from app.auth import AuthConfigError, Tokens, load_tokens, parse_tokens
from mlcore.predlog_schema import feedback

CRM = "crm-token-0123456789abcdef"
BILLING = "billing-token-fedcba9876543210"
SCORER = "scorer-token-00112233445566778899"
UNKNOWN_ID = "0" * 32  # well-formed, never issued


@pytest.fixture
def secured(make_app):
    return make_app(FEEDBACK_TOKENS=f"crm:{CRM}, billing:{BILLING}", PREDICT_TOKENS=f"scorer:{SCORER}")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def example(flask_app) -> dict:
    return dict(flask_app.extensions["serve"].model.example)


def predict_id(client, flask_app, headers=None) -> str:
    response = client.post("/predict", json=example(flask_app), headers=headers or {})
    assert response.status_code == 200, response.get_json()
    return response.get_json()["predictions"][0]["prediction_id"]


def stored_labels(flask_app) -> list[tuple]:
    with flask_app.extensions["serve"].log.engine.connect() as conn:
        rows = conn.execute(sa.select(feedback.c.prediction_id, feedback.c.label, feedback.c.client)).all()
    return sorted(tuple(row) for row in rows)


def test_by_default_both_endpoints_are_open_and_labels_are_unattributed(make_app):
    flask_app = make_app()
    client = flask_app.test_client()
    prediction_id = predict_id(client, flask_app)
    assert client.post("/feedback", json={"prediction_id": prediction_id, "label": 1}).status_code == 201
    assert stored_labels(flask_app) == [(prediction_id, 1, None)]


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="api"'),
        ({"Authorization": "Basic Y3JtOnNlY3JldA=="}, 'Bearer realm="api"'),
        ({"Authorization": "Bearer "}, 'Bearer realm="api"'),
        (bearer("wrong-token-0123456789abcdef"), 'Bearer realm="api", error="invalid_token"'),
        (bearer(CRM[:-1]), 'Bearer realm="api", error="invalid_token"'),  # a prefix is not the token
        (
            bearer(SCORER),
            'Bearer realm="api", error="invalid_token"',
        ),  # /predict's token, not /feedback's
    ],
)
def test_feedback_without_a_valid_token_is_401_json_with_a_challenge_and_stores_nothing(
    secured, headers, challenge
):
    client = secured.test_client()
    prediction_id = predict_id(client, secured, bearer(SCORER))
    response = client.post("/feedback", json={"prediction_id": prediction_id, "label": 1}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == challenge
    assert stored_labels(secured) == []


def test_each_label_records_the_name_of_the_token_that_sent_it(secured):
    client = secured.test_client()
    first, second = (predict_id(client, secured, bearer(SCORER)) for _ in range(2))
    assert (
        client.post("/feedback", json={"prediction_id": first, "label": 1}, headers=bearer(CRM)).status_code
        == 201
    )
    response = client.post("/feedback", json={"prediction_id": second, "label": 0}, headers=bearer(BILLING))
    assert response.status_code == 201
    assert stored_labels(secured) == sorted([(first, 1, "crm"), (second, 0, "billing")])


def test_predict_tokens_protect_predict_and_the_open_endpoints_stay_open(secured):
    client = secured.test_client()
    refused = client.post("/predict", json=example(secured))
    assert refused.status_code == 401 and "WWW-Authenticate" in refused.headers
    assert client.post("/predict", json=example(secured), headers=bearer(SCORER)).status_code == 200
    for path in ("/health", "/ready", "/metadata", "/metrics"):
        assert client.get(path).status_code == 200, path
    # refused requests are counted like any other
    assert 'endpoint="/predict",method="POST",status="401"' in client.get("/metrics").get_data(as_text=True)


def test_tokens_are_never_logged(secured, caplog):
    caplog.set_level(logging.DEBUG)
    client = secured.test_client()
    prediction_id = predict_id(client, secured, bearer(SCORER))
    client.post("/feedback", json={"prediction_id": prediction_id, "label": 1}, headers=bearer(CRM[::-1]))
    client.post("/feedback", json={"prediction_id": prediction_id, "label": 1}, headers=bearer(CRM))
    for token in (CRM, CRM[::-1], SCORER, BILLING):
        assert token not in caplog.text


def test_every_token_is_compared_in_constant_time(monkeypatch):
    """hmac.compare_digest against every configured token, even after a match: no early exit to time."""
    import app.auth as auth

    compared = []

    def spy(a, b):
        compared.append(b)
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tokens = parse_tokens("FEEDBACK_TOKENS", f"crm:{CRM},billing:{BILLING}")
    assert tokens.client(CRM) == "crm"
    assert compared == [CRM.encode(), BILLING.encode()]
    assert tokens.client("nope") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("crm", "entry 1 is not `name:token`"),
        (f"crm:{CRM},:{BILLING}", "entry 2 is not `name:token`"),
        (f"c rm:{CRM}", "entry 1 is not `name:token`"),
        ("crm:short", "the token of 'crm' must be at least 16 characters"),
        (f"crm:{CRM} x", "the token of 'crm' must be at least 16 characters without spaces"),
        (f"crm:{CRM},crm:{BILLING}", "the name 'crm' appears twice"),
    ],
)
def test_a_malformed_token_list_is_refused_naming_the_entry_but_never_the_token(raw, message):
    with pytest.raises(AuthConfigError, match="FEEDBACK_TOKENS") as error:
        parse_tokens("FEEDBACK_TOKENS", raw)
    assert message in str(error.value)
    assert CRM not in str(error.value) and BILLING not in str(error.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"AUTH_REQUIRED": "feedback"}, "AUTH_REQUIRED names /feedback, but FEEDBACK_TOKENS holds no token"),
        ({"AUTH_REQUIRED": "feedback", "FEEDBACK_TOKENS": " , "}, "FEEDBACK_TOKENS holds no token"),
        (
            {"AUTH_REQUIRED": "feedback,predict", "FEEDBACK_TOKENS": f"crm:{CRM}"},
            "PREDICT_TOKENS holds no token",
        ),
        ({"AUTH_REQUIRED": "fedback", "FEEDBACK_TOKENS": f"crm:{CRM}"}, "unknown endpoint 'fedback'"),
    ],
)
def test_a_required_endpoint_without_tokens_stops_the_server_at_start(make_app, config, message):
    with pytest.raises(AuthConfigError, match=message):
        make_app(**config)


def test_the_required_endpoint_with_tokens_starts():
    tokens = load_tokens({"AUTH_REQUIRED": "feedback", "FEEDBACK_TOKENS": f"crm:{CRM}"})
    assert tokens["api.post_feedback"] == Tokens((("crm", CRM.encode()),))
    assert tokens["api.predict"] == Tokens()


def test_tokens_come_from_the_environment(make_app, monkeypatch):
    monkeypatch.setenv("FEEDBACK_TOKENS", f"crm:{CRM}")
    monkeypatch.setenv("AUTH_REQUIRED", "feedback")
    client = make_app().test_client()
    assert client.post("/feedback", json={"prediction_id": UNKNOWN_ID, "label": 1}).status_code == 401
    response = client.post("/feedback", json={"prediction_id": UNKNOWN_ID, "label": 1}, headers=bearer(CRM))
    assert response.status_code == 404  # authenticated; the id is unknown


def test_the_spec_documents_the_bearer_scheme_and_the_401(secured):
    spec = secured.test_client().get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "a token of PREDICT_TOKENS / FEEDBACK_TOKENS",
    }
    for path in ("/predict", "/feedback"):
        operation = spec["paths"][path]["post"]
        assert operation["security"] == [{}, {"bearerAuth": []}]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]

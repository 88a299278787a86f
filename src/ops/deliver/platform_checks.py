"""What `make image-test` (tools/image_test.py) asks the running image in each platform's contract: readiness, a
valid record, an invalid one (a 4xx in the platform's error shape, naming the field) and a batch, written from the
published contracts (Vertex AI custom containers, SageMaker hosting, the MLflow scoring server, KServe V1 and the
Open Inference Protocol V2 over REST) with the standard library: no platform client is in the pinned dev stack.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

from ops.deliver.smoke import Check, http, invalid_record

# the routes a Vertex AI endpoint gives a deployed model (any path works: the container reads them)
VERTEX_ROUTES = {
    "AIP_HEALTH_ROUTE": "/v1/endpoints/image-test/deployedModels/1",
    "AIP_PREDICT_ROUTE": "/v1/endpoints/image-test/deployedModels/1:predict",
}
# each platform's scoring route and a body for the drain check (a request in flight at SIGTERM: InFlight)
DRAIN_REQUESTS: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
    "Vertex AI": (VERTEX_ROUTES["AIP_PREDICT_ROUTE"], lambda example: {"instances": [example] * 50}),
    "SageMaker": ("/invocations", lambda example: {"dataframe_records": [example] * 50}),
}


def probe(
    name: str, method: str, url: str, body: Any, status: int, holds: Callable[[Any], bool] = lambda _: True
) -> Check:
    try:
        got, answer = http(method, url, body)
    except OSError as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    try:
        ok = got == status and holds(answer)
    except (KeyError, TypeError, IndexError, ValueError):
        ok = False
    return Check(name, ok, f"status {got}, {str(answer)[:300]}")


def probabilities(answer: Any, n: int) -> bool:
    preds = answer["predictions"]
    return len(preds) == n and all(0 <= p["probability"] <= 1 and p["prediction_id"] for p in preds)


def names_field(message: str, field: str) -> bool:
    return f"'{field}'" in message


def vertex_checks(url: str, example: dict[str, Any]) -> list[Check]:
    field = next(iter(example))
    predict = url + VERTEX_ROUTES["AIP_PREDICT_ROUTE"]
    return [
        probe(
            "Vertex AI: GET $AIP_HEALTH_ROUTE is 200",
            "GET",
            url + VERTEX_ROUTES["AIP_HEALTH_ROUTE"],
            None,
            200,
        ),
        probe(
            "Vertex AI: POST $AIP_PREDICT_ROUTE predicts one instance",
            "POST",
            predict,
            {"instances": [example], "parameters": {}},
            200,
            lambda a: probabilities(a, 1),
        ),
        probe(
            "Vertex AI: a batch of 3 instances",
            "POST",
            predict,
            {"instances": [example] * 3},
            200,
            lambda a: probabilities(a, 3),
        ),
        probe(
            "Vertex AI: an invalid instance is 422 naming the field",
            "POST",
            predict,
            {"instances": [invalid_record(example)]},
            422,
            lambda a: a["error"]["field"] == field,
        ),
    ]


def sagemaker_checks(url: str, example: dict[str, Any]) -> list[Check]:
    field = next(iter(example))
    columns = list(example)
    split = {"dataframe_split": {"columns": columns, "data": [[example[c] for c in columns]] * 3}}
    return [
        probe("SageMaker: GET /ping is 200", "GET", f"{url}/ping", None, 200),
        probe(
            "SageMaker: POST /invocations predicts one record",
            "POST",
            f"{url}/invocations",
            [example],
            200,
            lambda a: probabilities(a, 1),
        ),
        probe(
            "MLflow: a dataframe_split batch of 3",
            "POST",
            f"{url}/invocations",
            split,
            200,
            lambda a: probabilities(a, 3),
        ),
        probe(
            "MLflow: an invalid record is 422 BAD_REQUEST naming the field",
            "POST",
            f"{url}/invocations",
            {"dataframe_records": [invalid_record(example)]},
            422,
            lambda a: a["error_code"] == "BAD_REQUEST" and names_field(a["message"], field),
        ),
    ]


def tensors(records: list[dict[str, Any]]) -> dict[str, Any]:
    """V2 inputs: one 1-D tensor per feature."""
    kinds = {str: "BYTES", int: "INT64", float: "FP64"}
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(records)],
                "datatype": kinds.get(type(value), "FP64"),
                "data": [r[name] for r in records],
            }
            for name, value in records[0].items()
        ]
    }


def v2_outputs(answer: Any, n: int) -> bool:
    out = {o["name"]: o for o in answer["outputs"]}
    return out["probability"]["shape"] == [n] and len(out["prediction_id"]["data"]) == n


def kserve_checks(url: str, example: dict[str, Any], name: str) -> list[Check]:
    field = next(iter(example))
    infer = f"{url}/v2/models/{name}/infer"
    return [
        probe("KServe V1: GET /v1/models/NAME is ready", "GET", f"{url}/v1/models/{name}", None, 200),
        probe(
            "KServe V1: POST /v1/models/NAME:predict a batch of 3",
            "POST",
            f"{url}/v1/models/{name}:predict",
            {"instances": [example] * 3},
            200,
            lambda a: probabilities(a, 3),
        ),
        probe("KServe V2: GET /v2/health/live is 200", "GET", f"{url}/v2/health/live", None, 200),
        probe("KServe V2: GET /v2/health/ready is 200", "GET", f"{url}/v2/health/ready", None, 200),
        probe(
            "KServe V2: GET /v2/models/NAME/ready is 200", "GET", f"{url}/v2/models/{name}/ready", None, 200
        ),
        probe(
            "KServe V2: POST /v2/models/NAME/infer one record",
            "POST",
            infer,
            tensors([example]),
            200,
            lambda a: v2_outputs(a, 1),
        ),
        probe(
            "KServe V2: a batch of 3", "POST", infer, tensors([example] * 3), 200, lambda a: v2_outputs(a, 3)
        ),
        probe(
            "KServe V2: an invalid record is 422 {error} naming the field",
            "POST",
            infer,
            tensors([invalid_record(example)]),
            422,
            lambda a: names_field(a["error"], field),
        ),
        probe("KServe V2: another model name is 404", "GET", f"{url}/v2/models/not-{name}/ready", None, 404),
    ]


class InFlight:
    """A request caught mid-body: its headers and half its body are sent (the server is serving it), the rest is
    sent by `finish`, which returns the HTTP status: a SIGTERM in between must not drop it (the drain)."""

    def __init__(self, port: int, path: str, body: Any, timeout: float = 30):
        self.body = json.dumps(body).encode()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n"
        )
        self.sock.sendall(head.encode() + self.body[: len(self.body) // 2])

    def finish(self) -> int:
        with self.sock:
            self.sock.sendall(self.body[len(self.body) // 2 :])
            answer = b""
            while chunk := self.sock.recv(65536):
                answer += chunk
        status_line = answer.split(b"\r\n", 1)[0].split()
        return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0

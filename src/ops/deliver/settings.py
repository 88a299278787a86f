"""params.yaml `delivery`: how images reach the environments (push or pull mode) and Vertex AI's rollout.

The one home of the deliver feature's settings (typed here, as each ops feature types its own section):
`DeliveryParams` (mode, the branches, how a pull-mode bump lands), `VertexParams` (ops.deliver.vertex), and
`load_delivery` (the section, or the defaults when params.yaml has none).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from pipeline.config import DEFAULT_PARAMS, Section, load_params

STAGING, PRODUCTION = "staging", "production"


class VertexParams(Section):
    """params.yaml `delivery.vertex`: how ops.deliver.vertex uploads and rolls out a model version on Vertex AI.

    The project, region, repository and endpoint are the cloud's, not the model's: repository and environment
    variables (the Terraform outputs, docs/deployment.md "Deploy to Vertex AI")."""

    # The container contract: Vertex sets AIP_HTTP_PORT, AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE from these.
    port: int = Field(default=8080, ge=1, le=65535)
    health_route: str = Field(default="/v1/health", pattern=r"^/[A-Za-z0-9/_:.-]*$")
    predict_route: str = Field(default="/v1/predict", pattern=r"^/[A-Za-z0-9/_:.-]*$")
    machine_type: str = Field(default="n1-standard-2", min_length=1)
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=2, ge=1)
    # The new version's share of the endpoint's traffic, step by step (each step smoke-tested); ends at 100.
    traffic_steps: list[int] = Field(default_factory=lambda: [10, 100], min_length=1)

    @model_validator(mode="after")
    def steps_rise_to_100(self) -> VertexParams:
        steps = self.traffic_steps
        if steps[-1] != 100 or any(not 0 < a < b for a, b in pairwise(steps)) or steps[0] < 1:
            raise ValueError(
                f"traffic_steps {steps}: rising percentages in 1..100 that end at 100, e.g. [10, 100]"
            )
        if self.max_replicas < self.min_replicas:
            raise ValueError(f"max_replicas {self.max_replicas} < min_replicas {self.min_replicas}")
        return self


class DeliveryParams(Section):
    """params.yaml `delivery`."""

    mode: Literal["push", "pull"] = "push"
    # pull mode: how a staging bump lands on its branch (branch protection may require a pull request)
    staging_bump: Literal["commit", "pull-request"] = "commit"
    staging_branch: str = Field(default="staging", min_length=1)
    production_branch: str = Field(default="main", min_length=1)
    branch_prefix: str = Field(default="deploy/", min_length=1)  # bump and promotion branches
    # pull mode: a promotion replaces production's serving image (`direct`) or runs it as the challenger in the
    # shadow (`shadow`) until monitoring's live evidence lets ops.deliver.shadow swap it in
    production_entry: Literal["direct", "shadow"] = "direct"
    vertex: VertexParams = Field(default_factory=VertexParams)  # the Vertex AI job (ops.deliver.vertex)

    @model_validator(mode="after")
    def shadow_entry_needs_pull(self) -> DeliveryParams:
        if self.production_entry == "shadow" and self.mode != "pull":
            raise ValueError(
                "production_entry: shadow needs mode: pull (in push mode the serving digest lives in the "
                "cluster, not in git); in push mode run a challenger by hand: make shadow ENV=production "
                "IMAGE=<name>@sha256:..."
            )
        return self


def load_delivery(path: Path = DEFAULT_PARAMS) -> DeliveryParams:
    params = load_params(path)
    if params.delivery is None:
        return DeliveryParams()
    return params.section("delivery", DeliveryParams, str(path))

"""Deploy the serving image to a Vertex AI endpoint: a gradual rollout, smoke-tested, undone when it fails.

    python -m ops.deliver.vertex preflight staging                        # CI: are the GCP variables set?
    python -m ops.deliver.vertex deploy staging --image ghcr.io/o/r@sha256:... [--model-version V]

`deploy` runs, in this order (each a command line built here, run with `gcloud` and `skopeo`):
1. copy the image by digest from its registry to the project's Artifact Registry repository (`skopeo copy --all
   --preserve-digests`: the digest Vertex runs is the one CI built and tested; gcloud has no copy between
   registries, and skopeo needs no container daemon and is on GitHub's Ubuntu runners);
2. `gcloud ai models upload` the model version once per digest (model id `<project>-<env>-<12 hex of the
   digest>`), with the container contract of params.yaml `delivery.vertex` (port, health and predict routes,
   which Vertex passes to the image as AIP_HTTP_PORT, AIP_HEALTH_ROUTE and AIP_PREDICT_ROUTE);
3. `gcloud ai endpoints deploy-model` with `traffic_steps[0]` per cent of the endpoint's traffic (the rest stays
   with what it served before), then `gcloud ai endpoints update --traffic-split` for each further step;
4. after each step, `gcloud ai endpoints predict` with the example record (model/metadata.json, else the one
   params.yaml's schema gives): a prediction per instance, and at 100 % answered by the new deployment;
5. at 100 %, undeploy the versions it replaced (their models stay in the Model Registry: a dispatch redeploys one).
When a step or its smoke test fails, the new deployment is undeployed with the previous traffic split restored,
and the command fails.

The cloud's names come from the environment (the deploy workflow passes its repository and environment variables,
the Terraform outputs of deploy/terraform/gcp): GCP_PROJECT_ID, GCP_REGION, GCP_ARTIFACT_REPOSITORY,
VERTEX_ENDPOINT_ID and, optional, VERTEX_SERVICE_ACCOUNT (the identity the model runs as). `preflight` tells the
workflow to skip, with a notice, when none of them is set (a fork, a repository without a GCP project).
`GCLOUD` and `SKOPEO` name the binaries (default: gcloud and skopeo on PATH).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlcore.errors import PipelineError, cli_entrypoint
from mlcore.example import example_record as from_features
from ops.deliver.settings import load_delivery
from ops.github import add_summary, set_outputs
from pipeline.config import load_params

# The repository variables (docs/deployment.md "Deploy to Vertex AI"); the workflow also needs the two auth ones.
TARGET_VARIABLES = ("GCP_PROJECT_ID", "GCP_REGION", "GCP_ARTIFACT_REPOSITORY", "VERTEX_ENDPOINT_ID")
AUTH_VARIABLES = ("GCP_WORKLOAD_IDENTITY_PROVIDER", "GCP_SERVICE_ACCOUNT")
DIGEST_REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._/:-]*)@(?P<digest>sha256:[0-9a-f]{64})$")
MODEL_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"[^a-z0-9_-]")
BINARIES = {"gcloud": "GCLOUD", "skopeo": "SKOPEO"}  # the variables that name them (tests: the stand-ins)


@dataclass(frozen=True)
class Target:
    """Where a model version goes: the GCP project, region, Artifact Registry repository and endpoint."""

    project: str
    region: str
    repository: str
    endpoint: str
    service_account: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Target:
        missing = [name for name in TARGET_VARIABLES if not env.get(name, "").strip()]
        if missing:
            raise PipelineError(
                f"Vertex AI target: {', '.join(missing)} not set; set them as repository or environment variables "
                "(the Terraform outputs, docs/deployment.md 'Deploy to Vertex AI')"
            )
        return cls(
            *(env[name].strip() for name in TARGET_VARIABLES), env.get("VERTEX_SERVICE_ACCOUNT", "").strip()
        )

    @property
    def registry(self) -> str:
        return f"{self.region}-docker.pkg.dev"

    def where(self) -> list[str]:
        return [f"--project={self.project}", f"--region={self.region}"]


@dataclass(frozen=True)
class Settings:
    """params.yaml `delivery.vertex` (ops.deliver.settings.VertexParams), as plain values."""

    port: int = 8080
    health_route: str = "/v1/health"
    predict_route: str = "/v1/predict"
    machine_type: str = "n1-standard-2"
    min_replicas: int = 1
    max_replicas: int = 2
    traffic_steps: tuple[int, ...] = (10, 100)


def load_settings(params: Path) -> tuple[Settings, str]:
    """params.yaml's `delivery.vertex` and `project.name`."""
    vertex = load_delivery(params).vertex
    values = vertex.model_dump()
    values["traffic_steps"] = tuple(values["traffic_steps"])
    return Settings(**values), load_params(params).project.name


def preflight(env: Mapping[str, str], environment: str) -> bool:
    """Every variable set: True. None set: a notice (the job skips, green). Some set: an error naming the rest."""
    names = (*AUTH_VARIABLES, *TARGET_VARIABLES)
    unset = [name for name in names if not env.get(name, "").strip()]
    if len(unset) == len(names):
        print(
            f"::notice title=Vertex AI deploy to {environment} skipped::no GCP variables (GCP_PROJECT_ID, ...) "
            "for this repository: nothing was deployed to Vertex AI. docs/deployment.md, 'Deploy to Vertex AI', "
            "shows how to create the project's resources (terraform apply) and set them."
        )
        return False
    if unset:
        raise PipelineError(
            f"Vertex AI deploy to {environment}: {', '.join(unset)} not set while {len(names) - len(unset)} of the "
            "GCP variables are; set them all (docs/deployment.md 'Deploy to Vertex AI') or none"
        )
    return True


# ------------------------------------------------------------------------------------- command lines (pure)


def split_ref(image: str) -> tuple[str, str]:
    """(name, digest) of a digest reference; anything else is refused (what was tested is what runs)."""
    match = DIGEST_REF.match(image)
    if match is None:
        raise PipelineError(f"--image {image!r}: must be a digest reference (registry/name@sha256:<64 hex>)")
    return match["name"], match["digest"]


def registry_host(name: str) -> str:
    first = name.split("/", 1)[0]
    return first if "." in first or ":" in first or first == "localhost" else "docker.io"


def destination(image: str, target: Target, environment: str) -> tuple[str, str]:
    """(tagged destination for the copy, the same image by digest in Artifact Registry)."""
    name, digest = split_ref(image)
    base = f"{target.registry}/{target.project}/{target.repository}/{name.rsplit('/', 1)[-1]}"
    return f"{base}:{environment}-{digest[7:19]}", f"{base}@{digest}"


def copy_command(image: str, tagged: str, authfile: str) -> list[str]:
    return [
        "copy", "--all", "--preserve-digests", "--retry-times=3", f"--authfile={authfile}",
        f"docker://{image}", f"docker://{tagged}",
    ]  # fmt: skip


def model_id(project_name: str, environment: str, image: str) -> str:
    """One Vertex model per environment and image digest: a re-run of the same digest uploads nothing."""
    _, digest = split_ref(image)
    found = f"{project_name}-{environment}-{digest[7:19]}"
    if not MODEL_ID.match(found):
        raise PipelineError(
            f"Vertex model id {found!r}: must start with a letter and hold at most 63 of a-z 0-9 _ -; "
            "rename params.yaml project.name (make project)"
        )
    return found


def label(value: str) -> str:
    return LABEL_VALUE.sub("-", value.lower())[:63]


def upload_command(
    target: Target, settings: Settings, model: str, image_by_digest: str, environment: str, model_version: str
) -> list[str]:
    labels = f"environment={label(environment)}" + (
        f",model-version={label(model_version)}" if model_version else ""
    )
    return [
        "ai", "models", "upload", *target.where(),
        f"--model-id={model}",
        f"--display-name={model}",
        f"--container-image-uri={image_by_digest}",
        f"--container-ports={settings.port}",
        f"--container-health-route={settings.health_route}",
        f"--container-predict-route={settings.predict_route}",
        f"--labels={labels}",
    ]  # fmt: skip


def split_arg(split: Mapping[str, int]) -> str:
    return "--traffic-split=" + ",".join(f"{key}={value}" for key, value in split.items())


def traffic_split(previous: Mapping[str, int], new: str, percent: int) -> dict[str, int]:
    """`percent` for `new`; the rest shared by the previous deployments in their proportions (largest first gets
    the rounding). An endpoint that served nothing gives the new deployment everything."""
    total = sum(previous.values())
    if total == 0:
        return {new: 100}
    rest = 100 - percent
    shares = {key: value * rest // total for key, value in previous.items()}
    if shares:
        largest = max(shares, key=lambda key: (previous[key], key))
        shares[largest] += rest - sum(shares.values())
    return {new: percent, **{key: value for key, value in sorted(shares.items()) if value > 0}}


def deploy_command(target: Target, settings: Settings, model: str, split: Mapping[str, int]) -> list[str]:
    """`deploy-model`; the new deployment is `0` in the traffic split (its id exists only afterwards)."""
    command = [
        "ai", "endpoints", "deploy-model", target.endpoint, *target.where(),
        f"--model={model}",
        f"--display-name={model}",
        f"--machine-type={settings.machine_type}",
        f"--min-replica-count={settings.min_replicas}",
        f"--max-replica-count={settings.max_replicas}",
        split_arg(split),
    ]  # fmt: skip
    if target.service_account:
        command.append(f"--service-account={target.service_account}")
    return command


def undeploy_command(target: Target, deployed: str, split: Mapping[str, int]) -> list[str]:
    command = [
        "ai",
        "endpoints",
        "undeploy-model",
        target.endpoint,
        *target.where(),
        f"--deployed-model-id={deployed}",
    ]
    return [*command, split_arg(split)] if split else command


def smoke_problems(response: Any, instances: int, expect_deployed: str | None) -> list[str]:
    """What is wrong with a predict response: a prediction per instance, from `expect_deployed` when named."""
    if not isinstance(response, dict):
        return [f"the response is not a JSON object: {response!r:.200}"]
    problems = []
    predictions = response.get("predictions")
    if not isinstance(predictions, list) or len(predictions) != instances:
        problems.append(f"{instances} prediction(s) expected, got {predictions!r:.200}")
    elif any(p in (None, "", [], {}) for p in predictions):
        problems.append(f"an empty prediction: {predictions!r:.200}")
    if expect_deployed is not None and str(response.get("deployedModelId")) != expect_deployed:
        problems.append(
            f"answered by deployment {response.get('deployedModelId')!r}, not the new {expect_deployed}"
        )
    return problems


# ------------------------------------------------------------------------------------------------ running


def run(
    tool: str, args: Sequence[str], input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    binary = os.environ.get(BINARIES[tool], tool)
    try:
        proc = subprocess.run([binary, *args], input=input, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise PipelineError(f"{binary}: not found (install {tool}; GitHub's Ubuntu runners have it)") from exc
    if check and proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise PipelineError(
            f"`{tool} {' '.join(args[:3])}` failed: {message[-1] if message else proc.returncode}"
        )
    return proc


def gcloud_json(args: Sequence[str]) -> Any:
    out = run("gcloud", [*args, "--format=json"]).stdout
    try:
        return json.loads(out or "null")
    except json.JSONDecodeError as exc:
        raise PipelineError(f"`gcloud {' '.join(args[:3])}`: not JSON: {out[:200]!r}") from exc


def copy_image(image: str, tagged: str, registry: str) -> None:
    """skopeo copy, logged in to Artifact Registry with gcloud's short-lived token (and to the source registry
    with REGISTRY_USERNAME/REGISTRY_PASSWORD when set); the tokens travel on stdin into a throw-away auth file."""
    token = run("gcloud", ["auth", "print-access-token"]).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="vertex-auth-") as tmp:
        authfile = str(Path(tmp) / "auth.json")
        login = ["login", f"--authfile={authfile}", "--password-stdin"]
        run("skopeo", [*login, "--username=oauth2accesstoken", registry], input=token)
        if os.environ.get("REGISTRY_PASSWORD"):
            user = os.environ.get("REGISTRY_USERNAME") or "token"
            run(
                "skopeo",
                [*login, f"--username={user}", registry_host(image)],
                input=os.environ["REGISTRY_PASSWORD"],
            )
        run("skopeo", copy_command(image, tagged, authfile))


def endpoint_state(target: Target) -> tuple[dict[str, int], dict[str, str]]:
    """(traffic split, deployed model id -> model resource name) of the endpoint."""
    described = gcloud_json(["ai", "endpoints", "describe", target.endpoint, *target.where()]) or {}
    split = {str(k): int(v) for k, v in (described.get("trafficSplit") or {}).items()}
    models = {str(d["id"]): str(d.get("model", "")) for d in described.get("deployedModels") or []}
    return split, models


def deployed_id(models: Mapping[str, str], model: str) -> str | None:
    found = [key for key, name in models.items() if name == model or name.endswith(f"/models/{model}")]
    return found[0] if found else None


def predict(target: Target, instances: list[dict[str, Any]], request_dir: Path) -> Any:
    request = request_dir / "vertex-smoke-request.json"
    request.write_text(json.dumps({"instances": instances}), encoding="utf-8")
    proc = run(
        "gcloud",
        [
            "ai",
            "endpoints",
            "predict",
            target.endpoint,
            *target.where(),
            f"--json-request={request}",
            "--format=json",
        ],
        check=False,
    )
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return f"predict failed: {lines[-1] if lines else proc.returncode}"
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError:
        return proc.stdout


def example_record(params: Path, metadata: Path) -> dict[str, Any]:
    """The model's example record (model/metadata.json), else the one params.yaml's schema gives (the same rule)."""
    if metadata.is_file():
        example = json.loads(metadata.read_text(encoding="utf-8")).get("example")
        if isinstance(example, dict) and example:
            return example
    features = load_params(params).schema.features
    return from_features(
        [
            {"name": name, "type": spec.type, "min": spec.min, "max": spec.max, "allowed": spec.allowed}
            for name, spec in features.items()
        ]
    )


def rollout(
    target: Target,
    settings: Settings,
    model: str,
    instances: list[dict[str, Any]],
    work: Path,
) -> str:
    """Deploy `model` to the endpoint step by step; smoke-test each step; undeploy it when one fails."""
    split_before, models = endpoint_state(target)
    new = deployed_id(models, model)
    was_deployed = new is not None  # a re-run: the digest is deployed already
    previous = {key: value for key, value in split_before.items() if key != new}
    retire = [key for key in models if key != new]  # also earlier deployments left without traffic
    try:
        for percent in settings.traffic_steps:
            split = traffic_split(previous, new or "0", percent)
            if new is None:
                run("gcloud", deploy_command(target, settings, model, split))
                new = deployed_id(endpoint_state(target)[1], model)
                if new is None:
                    raise PipelineError(
                        f"endpoint {target.endpoint}: {model} is not deployed after deploy-model"
                    )
            else:  # a later step, or a re-run that finds the model deployed already
                run(
                    "gcloud",
                    ["ai", "endpoints", "update", target.endpoint, *target.where(), split_arg(split)],
                )
            share = split[new if new in split else "0"]
            problems = smoke_problems(
                predict(target, instances, work), len(instances), new if share == 100 else None
            )
            if problems:
                raise PipelineError(f"smoke test at {share}% of the traffic: {'; '.join(problems)}")
            print(f"{model}: {share}% of endpoint {target.endpoint}'s traffic, smoke test passed")
            if share == 100:
                break
    except PipelineError as exc:
        if new is None:
            raise
        if was_deployed and not previous:
            raise PipelineError(
                f"Vertex AI rollout of {model}: {exc}; it served alone before: left deployed"
            ) from exc
        undo = run("gcloud", undeploy_command(target, new, previous), check=False)
        outcome = (
            "undeployed it: the traffic is back on the previous deployment"
            if undo.returncode == 0
            else f"undeploy FAILED too ({(undo.stderr or undo.stdout).strip()[-200:]}): fix the endpoint by hand"
        )
        raise PipelineError(f"Vertex AI rollout of {model}: {exc}; {outcome}") from exc
    for old in retire:
        run("gcloud", undeploy_command(target, old, {}))
    return new


def deploy(
    environment: str,
    image: str,
    model_version: str,
    env: Mapping[str, str],
    params: Path,
    metadata: Path,
    work: Path,
) -> str:
    """Copy, upload, roll out; returns the new deployed model id."""
    target = Target.from_env(env)
    settings, project_name = load_settings(params)
    model = model_id(project_name, environment, image)
    tagged, by_digest = destination(image, target, environment)
    copy_image(image, tagged, target.registry)
    print(f"copied {image} to {by_digest}")
    exists = run("gcloud", ["ai", "models", "describe", model, *target.where(), "--format=json"], check=False)
    if exists.returncode == 0:
        print(f"model {model} exists already (same digest): not uploaded again")
    else:
        run("gcloud", upload_command(target, settings, model, by_digest, environment, model_version))
        print(f"uploaded model {model}")
    instances = [example_record(params, metadata)]
    return rollout(target, settings, model, instances, work)


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.deliver.vertex", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name) for name in ("preflight", "deploy")}
    for p in commands.values():
        p.add_argument("env", help="environment (staging, production)")
    commands["deploy"].add_argument(
        "--image", required=True, help="image digest reference (registry/name@sha256:...)"
    )
    commands["deploy"].add_argument("--model-version", default="", help="a label on the Vertex model")
    commands["deploy"].add_argument("--params", type=Path, default=Path("params.yaml"))
    commands["deploy"].add_argument(
        "--metadata",
        type=Path,
        default=Path("model/metadata.json"),
        help="its example record is the smoke request",
    )
    args = parser.parse_args(argv)
    if args.command == "preflight":
        set_outputs({"enabled": preflight(os.environ, args.env)})
        return 0
    with tempfile.TemporaryDirectory(prefix="vertex-") as work:
        deployed = deploy(
            args.env, args.image, args.model_version, os.environ, args.params, args.metadata, Path(work)
        )
    target = Target.from_env(os.environ)
    add_summary(
        f"Vertex AI: `{args.image}` (model {args.model_version or 'unknown'}) serves 100% of endpoint "
        f"{target.endpoint} in {target.region} ({args.env}), deployed model {deployed}.\n"
    )
    print(
        f"deployed {args.image} to Vertex AI endpoint {target.endpoint} ({args.env}): deployed model {deployed}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

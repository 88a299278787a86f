"""The project's name in the files that cannot read params.yaml: `python -m ops.project write|check` (`make project`).

params.yaml `project.name` is the one home of the name. Python reads it through pipeline.config; kustomize,
Prometheus and Grafana cannot, so this module writes it where they look:
- deploy/k8s/project/kustomization.yaml, a kustomize Component both overlays include: `namePrefix: <name>-`
  (Deployment, Service, ... `<name>-api`, ConfigMap `<name>-api-config`, Secret `<name>-api-secrets`) and the
  `app.kubernetes.io/name: <name>-api` label and selectors; written whole.
- the overlays' namespace `<name>-<env>` and instance label, the tune job's namePrefix and label, the alert
  group and names (`<Name>ApiHighErrorRate`, also in their promtool unit tests), the dashboard's title, uid
  and tags, pull mode's Argo CD project, ApplicationSet and Flux objects (deploy/gitops): one line each,
  rewritten in place (RULES) so the files keep their comments.
`check` (tests/ops/test_project.py runs it) fails, naming the file, when one of them disagrees with params.yaml.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mlcore.errors import PipelineError, cli_entrypoint
from pipeline.config import DEFAULT_PARAMS, ProjectParams, load_params

COMPONENT = Path("deploy/k8s/project/kustomization.yaml")
ENVIRONMENTS = ("staging", "production")
ALERTS = (
    "HighErrorRate",
    "HighLatency",
    "NoTraffic",
    "ModelNotReady",
    "PredictionLogBacklog",
    "PredictionLogFull",
)
ALERT_NAME = rf"\b([A-Z][A-Za-z0-9]*?)(?:{'|'.join(ALERTS)})\b"  # the prefix of `<Name>ApiHighErrorRate`


def service_name(project: ProjectParams) -> str:
    """What the inference service is called: its Kubernetes objects, image and Prometheus group."""
    return f"{project.name}-api"


def alert_prefix(project: ProjectParams) -> str:
    """`acme-risk` -> `AcmeRiskApi`: Prometheus alert names are CamelCase by convention."""
    return "".join(part.capitalize() for part in service_name(project).split("-"))


def component(project: ProjectParams) -> str:
    service = service_name(project)
    return f"""\
# The project's name in the Kubernetes manifests, included by both overlays. Written by `make project` from
# params.yaml `project.name`: edit that, not this file.
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
namePrefix: {project.name}-
labels:
  - pairs:
      app.kubernetes.io/name: {service}
    includeSelectors: false
    includeTemplates: true
    fields:   # the api's selectors; not the NetworkPolicy's `from` selectors, which pick other pods
      - {{kind: Deployment, path: spec/selector/matchLabels, create: true}}
      - {{kind: Deployment, path: spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels}}
      - {{kind: Service, path: spec/selector, create: true}}
      - {{kind: PodDisruptionBudget, path: spec/selector/matchLabels, create: true}}
      - {{kind: NetworkPolicy, path: spec/podSelector/matchLabels, create: true}}
replacements:   # the Secret is created outside kustomize (docs/deployment.md): give its references the prefix
  - source: {{kind: Deployment, fieldPath: metadata.name}}
    targets:
      - select: {{kind: Deployment}}
        fieldPaths: [spec.template.spec.containers.*.env.*.valueFrom.secretKeyRef.name]
        options: {{delimiter: "-", index: 0}}
"""


@dataclass(frozen=True)
class Rule:
    """In `path`, the first group of every match of `pattern` becomes `value(project)`."""

    path: str
    pattern: str
    value: Callable[[ProjectParams], str]


def _overlay_rules(env: str) -> list[Rule]:
    where = f"deploy/k8s/overlays/{env}/kustomization.yaml"
    return [
        Rule(where, r"(?m)^namespace: ([a-z0-9-]+)", lambda p: f"{p.name}-{env}"),
        Rule(where, r"app\.kubernetes\.io/instance: ([a-z0-9-]+)", lambda p: f"{service_name(p)}-{env}"),
    ]


def project_name(project: ProjectParams) -> str:
    return project.name


def _prefix_of(key: str, suffix: str) -> str:
    """`key: <name><suffix>` (`namespace: acme-staging`): the group is the project name before the suffix."""
    return rf"\b{key}: ([a-z0-9-]+?){suffix}\b"


ARGOCD = "deploy/gitops/argocd"
FLUX = "deploy/gitops/flux"


def _gitops_rules(env: str) -> list[Rule]:
    """Pull mode's names for `env`: Argo CD's project, ApplicationSet and per-environment kustomization, Flux's
    GitRepository and Kustomization (deploy/gitops/; docs/deployment.md "Pull mode: Argo CD or Flux")."""
    return [
        Rule(f"{ARGOCD}/appproject.yaml", _prefix_of("namespace", f"-{env}"), project_name),
        Rule(f"{ARGOCD}/applicationset.yaml", _prefix_of("name", f"-api-{env}"), project_name),
        Rule(f"{ARGOCD}/applicationset.yaml", _prefix_of("namespace", f"-{env}"), project_name),
        Rule(
            f"{ARGOCD}/{env}/kustomization.yaml", r"(?m)^namespace: ([a-z0-9-]+)", lambda p: f"{p.name}-{env}"
        ),
        Rule(f"{FLUX}/gitrepository.yaml", _prefix_of("name", f"-{env}"), project_name),
        Rule(f"{FLUX}/kustomizations.yaml", _prefix_of("name", f"-{env}"), project_name),
        Rule(f"{FLUX}/kustomizations.yaml", _prefix_of("targetNamespace", f"-{env}"), project_name),
    ]


RULES: list[Rule] = [
    *(rule for env in ENVIRONMENTS for rule in _overlay_rules(env)),
    *(rule for env in ENVIRONMENTS for rule in _gitops_rules(env)),
    Rule(f"{ARGOCD}/appproject.yaml", r"(?m)^  name: ([a-z0-9-]+)", project_name),
    Rule(f"{ARGOCD}/applicationset.yaml", r"(?m)^  name: ([a-z0-9-]+)", service_name),
    Rule(f"{ARGOCD}/applicationset.yaml", r"\bproject: ([a-z0-9-]+)", project_name),
    Rule(f"{ARGOCD}/smoke-test/kustomization.yaml", r"kind: Service, name: ([a-z0-9-]+)", service_name),
    Rule("deploy/k8s/tune-job/kustomization.yaml", r"(?m)^namePrefix: ([a-z0-9-]+)", lambda p: f"{p.name}-"),
    Rule(
        "deploy/k8s/tune-job/kustomization.yaml",
        r"app\.kubernetes\.io/name: ([a-z0-9-]+)",
        lambda p: f"{p.name}-tune",
    ),
    Rule("deploy/monitoring/alerts.yaml", r"(?m)^  - name: ([a-z0-9-]+)", service_name),
    Rule("deploy/monitoring/alerts.yaml", ALERT_NAME, alert_prefix),
    Rule("deploy/monitoring/alerts.test.yaml", ALERT_NAME, alert_prefix),
    Rule("deploy/monitoring/dashboard.json", r'(?m)^  "title": ("[^"]*")', lambda p: json.dumps(p.title)),
    Rule("deploy/monitoring/dashboard.json", r'(?m)^  "uid": "([a-z0-9-]+)"', service_name),
    Rule(
        "deploy/monitoring/dashboard.json", r'(?m)^  "tags": \[\n    ("[^"]*")', lambda p: json.dumps(p.name)
    ),
    Rule("deploy/monitoring/dashboard.json", ALERT_NAME, alert_prefix),
]


def _replace_group(match: re.Match[str], value: str) -> str:
    whole, start = match.group(0), match.start()
    return whole[: match.start(1) - start] + value + whole[match.end(1) - start :]


def apply_rules(text: str, rules: list[Rule], project: ProjectParams, path: str) -> str:
    for rule in rules:
        text, count = re.subn(rule.pattern, partial(_replace_group, value=rule.value(project)), text)
        if count == 0:
            raise PipelineError(
                f"{path}: no line matches {rule.pattern!r}: restore the line `make project` writes"
            )
    return text


def expected_files(project: ProjectParams, root: Path) -> dict[Path, str]:
    """Every file that carries the name, as it must read for `project`."""
    out = {root / COMPONENT: component(project)}
    for path in dict.fromkeys(rule.path for rule in RULES):
        file = root / path
        if not file.is_file():
            raise PipelineError(f"{file}: missing (it carries the project name)")
        rules = [rule for rule in RULES if rule.path == path]
        out[file] = apply_rules(file.read_text(encoding="utf-8"), rules, project, path)
    return out


def stale(project: ProjectParams, root: Path) -> list[Path]:
    """The files that disagree with `project`."""
    return [
        path
        for path, text in expected_files(project, root).items()
        if not path.is_file() or path.read_text(encoding="utf-8") != text
    ]


def write(project: ProjectParams, root: Path) -> list[Path]:
    changed = stale(project, root)
    for path, text in expected_files(project, root).items():
        if path in changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    return changed


@cli_entrypoint
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.project", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("write", "check"))
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS)
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository (default: here)")
    args = parser.parse_args(argv)
    project = load_params(args.params).project
    if args.command == "check":
        if out_of_date := stale(project, args.root):
            files = ", ".join(str(p.relative_to(args.root)) for p in out_of_date)
            print(
                f"{files}: not named {project.name!r} (params.yaml project): run `make project`",
                file=sys.stderr,
            )
            return 1
        print(f"project name {project.name!r}: every file agrees")
        return 0
    changed = write(project, args.root)
    for path in changed:
        print(f"wrote {path.relative_to(args.root)}")
    print(f"project name {project.name!r}: {len(changed)} file(s) updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

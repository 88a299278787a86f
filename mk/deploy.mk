# Deployment: the container image, its end-to-end test, Kubernetes overlays and the smoke test.
# Logic lives in src/ops/project.py, src/ops/deliver/{image,deploy,rollout,smoke,plan,settings,gitops,analysis,
# vertex,shadow}.py and tools/image_test.py (tested by tests/ops/deliver/test_{image,deploy,rollout,smoke,gitops,
# analysis,canary_analysis,vertex,shadow}.py).
# params.yaml `delivery.mode`: push (deploy, rollback) or pull (the gitops-* targets: git declares the digest,
# Argo CD or Flux syncs it; docs/deployment.md).
.PHONY: project image image-test image-model smoke manifests deploy rollback delivery-plan gitops-check gitops-bump \
	gitops-promote gitops-publish canary-analysis vertex-deploy kserve-manifests shadow shadow-evidence shadow-swap

# image, image-test: default localhost/<project.name>-api:dev (params.yaml); manifests, deploy: a digest
IMAGE ?=
IMAGE_TEST_MODEL ?= model
ENV ?= staging
URL ?=
MODEL_VERSION ?=
REF ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
BEFORE ?=
DIGEST ?=
HOW ?= params
DISPATCH ?=
OFF ?=
VERDICT ?= monitoring/verdict.json
# canary-analysis: a Prometheus URL (default: the template's), the pod-template hashes, more NAME=VALUE args
PROMETHEUS ?=
CANARY ?=
STABLE ?=
ANALYSIS_ARGS ?=

project: venv ## After changing params.yaml `project`: write its name into deploy/ (k8s component, overlays, alerts, dashboard)
	$(BIN)/python -m ops.project write

image: venv ## Build the serving image from model/ with podman or docker (IMAGE=name:tag)
	$(BIN)/python -m ops.deliver.image build $(if $(IMAGE),--tag $(IMAGE))

image-test: venv system-tools ## Build the image with podman, run it on a loopback port and check it end to end
ifeq ($(IMAGE_TEST_MODEL),model)
	@test -f model/metadata.json || { echo "no model in model/: running the pipeline first (make repro)"; \
		$(MAKE) repro; }
endif
	$(BIN)/python tools/image_test.py $(if $(IMAGE),--tag $(IMAGE)) --model $(IMAGE_TEST_MODEL)

image-model: model-from-lock ## Put the model dvc.lock records in model/ (pulled, or reproduced and verified)

smoke: venv ## Smoke-test a service: make smoke URL=https://... (or ENV=staging: port-forward) [MODEL_VERSION=v]
ifneq ($(strip $(URL)),)
	$(BIN)/python -m ops.deliver.smoke "$(URL)" --model-version "$(MODEL_VERSION)"
else
	$(BIN)/python -m ops.deliver.deploy smoke $(ENV) --model-version "$(MODEL_VERSION)"
endif

manifests: venv ## Print the Kubernetes manifests of ENV (staging|production) pinned to IMAGE (a digest)
	$(BIN)/python -m ops.deliver.deploy render $(ENV) --image "$(IMAGE)"

deploy: venv ## Apply ENV's overlay with IMAGE (a digest) and wait for the rollout; undo it if it fails
	$(BIN)/python -m ops.deliver.deploy apply $(ENV) --image "$(IMAGE)"

rollback: venv ## Roll ENV back to the previous revision (kubectl rollout undo)
	$(BIN)/python -m ops.deliver.deploy rollback $(ENV)

delivery-plan: venv ## What a push to REF deploys in params.yaml's delivery mode: deploy|bump|promote|skip [BEFORE=sha]
	$(BIN)/python -m ops.deliver.plan --ref "$(REF)" --before "$(BEFORE)" $(if $(DISPATCH),--environment "$(ENV)")

gitops-check: venv ## Refuse an overlay with a shadow but no challenger digest (or the reverse); pull mode: pinned by a tag
	$(BIN)/python -m ops.deliver.gitops check

gitops-bump: venv ## Pull mode: pin ENV's overlay to IMAGE (a digest the registry must hold)
	$(BIN)/python -m ops.deliver.gitops bump $(ENV) --image "$(IMAGE)"

gitops-promote: venv ## Pull mode: pin production to the digest staging runs (or DIGEST=sha256:..., one staging ran)
	$(BIN)/python -m ops.deliver.gitops promote $(if $(DIGEST),--digest "$(DIGEST)")

gitops-publish: venv ## Pull mode: commit ENV's overlay change; push it to its branch or open a PR (HOW=commit|pull-request)
	$(BIN)/python -m ops.deliver.gitops publish $(ENV) --how "$(HOW)" --model-version "$(MODEL_VERSION)"

shadow: venv ## Run IMAGE (a digest the registry holds) as ENV's challenger in the shadow; OFF=1 removes the shadow
	$(BIN)/python -m ops.deliver.shadow $(if $(OFF),off $(ENV),pin $(ENV) --image "$(IMAGE)")

shadow-evidence: venv ## Does monitoring's VERDICT hold live evidence for ENV's challenger? (prints what is missing; exit 0)
	$(BIN)/python -m ops.deliver.shadow evidence $(ENV) --verdict "$(VERDICT)" --model-version "$(MODEL_VERSION)"

shadow-swap: venv ## With live evidence in VERDICT: ENV's challenger becomes its serving image (pull: a PR; push: applied + a PR); refused otherwise
	$(BIN)/python -m ops.deliver.shadow swap $(ENV) --verdict "$(VERDICT)" --model-version "$(MODEL_VERSION)"

canary-analysis: venv ## Judge a canary now with deploy/k8s/canary's AnalysisTemplate: PROMETHEUS=url CANARY=hash STABLE=hash [ANALYSIS_ARGS="window=10m ..."]
	$(BIN)/python -m ops.deliver.analysis --template deploy/k8s/canary/analysis-template.yaml \
		$(if $(PROMETHEUS),--prometheus "$(PROMETHEUS)") $(if $(CANARY),--arg "canary-hash=$(CANARY)") $(if $(STABLE),--arg "stable-hash=$(STABLE)") \
		$(foreach a,$(ANALYSIS_ARGS),--arg "$(a)")

vertex-deploy: venv ## Vertex AI: copy IMAGE (a digest) to Artifact Registry, upload it, roll it out on ENV's endpoint in steps, smoke-test, undeploy on failure [MODEL_VERSION=v]
	$(BIN)/python -m ops.deliver.vertex deploy $(ENV) --image "$(IMAGE)" --model-version "$(MODEL_VERSION)"

kserve-manifests: ## Print ENV's KServe InferenceService (V2 protocol), rendered from its overlay and digest pin (deploy/k8s/kserve)
	kubectl kustomize deploy/k8s/kserve/$(ENV)

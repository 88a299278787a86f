# The inference service image: gunicorn serving app.wsgi:app with the model the commit's dvc.lock names.
# Build from the repository root after `make run` (or `dvc pull`) has produced model/:  make image
# Works on the official python:3.11-slim and on Debian's python3 (no reliance on /usr/local/bin/python).

ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the serving dependencies only ---------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# uv installs the pinned requirements in parallel and byte-compiles them (the runtime root is read-only);
# UV_NATIVE_TLS: trust the system CA store, like pip does (proxies with their own CA).
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_NATIVE_TLS=1 \
    UV_NO_CACHE=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
RUN python3 -m venv /opt/build-tools \
    && /opt/build-tools/bin/pip install "uv==${UV_VERSION}" \
    && python3 -m venv --without-pip /opt/venv
COPY requirements/serve.txt /tmp/serve.txt
RUN /opt/build-tools/bin/uv pip install --python /opt/venv/bin/python -r /tmp/serve.txt \
    && find /opt/venv -depth -type d -name tests -path '*/site-packages/*/tests' -prune -exec rm -rf {} +
# The service's files, made world-readable here (model files are written 0600) so runtime copies one layer.
# The service imports only the shared core (src/mlcore), never the pipeline or ops packages.
COPY src/mlcore/ /srv/mlcore/
# The smoke test (standard library + mlcore.errors) rides along, so the Argo CD PostSync hook
# (deploy/gitops/argocd/smoke-test) runs `python -m ops.deliver.smoke` in this image: only these three files.
COPY src/ops/__init__.py /srv/ops/__init__.py
COPY src/ops/deliver/__init__.py /srv/ops/deliver/__init__.py
COPY src/ops/deliver/smoke.py /srv/ops/deliver/smoke.py
COPY app/ /srv/app/
COPY model/ /srv/model/
RUN chmod -R u=rwX,go=rX /srv

# --- runtime: the virtualenv, the app, the model artifact; nothing else -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG GIT_REVISION=unknown
ARG MODEL_VERSION=unknown
# params.yaml `project` (ops.deliver.image passes them)
ARG IMAGE_TITLE=inference-api
ARG IMAGE_DESCRIPTION="Inference service (gunicorn + Flask)"
LABEL org.opencontainers.image.title="${IMAGE_TITLE}" \
      org.opencontainers.image.description="${IMAGE_DESCRIPTION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_REVISION}" \
      io.github.gitops-mlops.model-version="${MODEL_VERSION}"

# A fixed numeric uid so Kubernetes can verify runAsNonRoot.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

COPY --from=build /opt/venv /opt/venv
COPY --from=build /srv /srv
WORKDIR /srv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/srv \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2 \
    MODEL_DIR=/srv/model \
    PREDICTION_LOG_URL=sqlite:////tmp/predictions.db

USER 10001:10001
EXPOSE 8000
# No curl in slim images: the venv's python asks /health on the port gunicorn.conf.py chose (BIND, AIP_HTTP_PORT,
# PORT), then on 8080 (`serve`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/venv/bin/python", "-m", "app.healthcheck"]
# `docker run IMAGE` serves the native API (and the platforms' routes); `docker run IMAGE serve` is SageMaker's
# start (port 8080); other arguments go to gunicorn (app/entrypoint.sh).
ENTRYPOINT ["/bin/sh", "/srv/app/entrypoint.sh"]

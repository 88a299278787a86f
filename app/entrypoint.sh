#!/bin/sh
# The image's entry point: gunicorn serving app.wsgi:app with app/gunicorn.conf.py (which picks the address:
# BIND, else 0.0.0.0:$AIP_HTTP_PORT on Vertex AI, else $HOST:$PORT, 0.0.0.0:8000 in the image).
#   docker run IMAGE          the native API and every platform's routes
#   docker run IMAGE serve    SageMaker's start: port 8080 (SAGEMAKER_BIND_TO_PORT when SageMaker sets it)
# Any other arguments are passed to gunicorn. `exec`: gunicorn is PID 1 and receives SIGTERM itself.
set -eu
if [ "${1:-}" = "serve" ]; then
    shift
    PORT="${SAGEMAKER_BIND_TO_PORT:-8080}"
    export PORT
fi
exec /opt/venv/bin/gunicorn --config /srv/app/gunicorn.conf.py app.wsgi:app "$@"

# Two images from one file. The default target: jobs, MLDash, Dagster and the MLflow server (CPU torch, the whole
# lock). `--target serve`: MLFlask alone, on the servable (ONNX Runtime and tokenizers, no torch): what
# `pip install mlplatform[serve]` installs, at the lock's versions.
#
#   docker build -t mlplatform:latest .                                  # with a registry: python:3.11-slim, PyPI
#   docker build --target serve -t mlplatform-serve:latest .
#   docker build --network host --build-arg BASE_IMAGE=mlplatform-base:bookworm -t mlplatform:latest .
#                                                                       # without: a local base, docker/wheels/
# With wheels in docker/wheels/ (scripts/wheelhouse.sh fills it from the host's pip), pip installs from them only,
# with no index: the build needs no registry at all. Otherwise torch comes from TORCH_INDEX_URL (CPU wheels) and
# the rest from PyPI. The base needs python3 with venv: the official python image, or Debian's python3 (3.11).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
COPY requirements.lock /src/
COPY docker/wheels/ /wheels/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    pip="/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check"; \
    torch="$(sed -n 's/^\(torch==[0-9.]*\)  .*/\1/p' /src/requirements.lock)"; \
    if ls /wheels/*.whl >/dev/null 2>&1; then \
      $pip --no-index --find-links /wheels "$torch"; \
      $pip --no-index --find-links /wheels -r /src/requirements.lock; \
    else \
      $pip "$torch" --index-url "$TORCH_INDEX_URL"; \
      $pip -r /src/requirements.lock; \
    fi; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

# The serving venv: the base dependencies and the `serve` extra of pyproject.toml, constrained to the lock.
FROM ${BASE_IMAGE} AS build-serve
COPY requirements.lock pyproject.toml /src/
COPY docker/wheels/ /wheels/
RUN set -eu; \
    python3 -m venv /opt/venv; \
    pip="/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -c /src/requirements.lock"; \
    python3 -c "import tomllib; p = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['serve']))" > /src/serve.txt; \
    if ls /wheels/*.whl >/dev/null 2>&1; then \
      $pip --no-index --find-links /wheels -r /src/serve.txt; \
    else \
      $pip -r /src/serve.txt; \
    fi; \
    if /opt/venv/bin/python -c "import torch" 2>/dev/null; then echo "torch reached the serving image" >&2; exit 1; fi; \
    find /opt/venv -name __pycache__ -prune -exec rm -rf {} +

FROM ${BASE_IMAGE} AS serve
RUN useradd --create-home --uid 1000 app && mkdir -p /store /app && chown app:app /store /app
COPY --from=build-serve /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app mlplatform mlplatform
COPY --chown=app:app apps apps
COPY --chown=app:app docker/healthcheck.py docker/
USER app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=30 \
  CMD ["python", "docker/healthcheck.py", "http://127.0.0.1:5001/health"]
CMD ["python", "-m", "apps.mlflask"]

# The default target: every other service.
FROM ${BASE_IMAGE} AS full
RUN useradd --create-home --uid 1000 app \
 && mkdir -p /store /mlflow /app /opt/dagster/home \
 && chown app:app /store /mlflow /app /opt/dagster/home
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=app:app mlplatform mlplatform
COPY --chown=app:app apps apps
COPY --chown=app:app jobs jobs
COPY --chown=app:app docker/healthcheck.py docker/dagster-workspace.yaml docker/mlflow_auth.py docker/

# .git is not copied into the image, so the commit that runs are tagged with comes in as a build arg.
ARG GIT_COMMIT=unknown
USER app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    GIT_COMMIT=${GIT_COMMIT} \
    DATA_CACHE_DIR=/home/app/.cache/mlplatform
# MLflow 5000, MLFlask 5001, MLDash 8050, Dagster 3000. The image's own check is MLFlask's; compose sets each
# service's (python, not curl: the image carries no curl).
EXPOSE 5000 5001 3000 8050
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=30 \
  CMD ["python", "docker/healthcheck.py", "http://127.0.0.1:5001/health"]
CMD ["python", "-m", "apps.mlflask"]

# One image for every service: jobs, MLFlask, MLDash and the MLflow server. CPU torch.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends git curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 app \
 && mkdir -p /store /mlflow /app \
 && chown app:app /store /mlflow /app

WORKDIR /app
COPY requirements.lock ./
# The CPU wheel first: requirements.lock's torch==2.13.0 is then already satisfied, with no CUDA download.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.lock

COPY --chown=app:app . .
RUN pip install --no-cache-dir --no-deps -e .

USER app
ENV PYTHONUNBUFFERED=1 \
    DATA_CACHE_DIR=/home/app/.cache/mlplatform

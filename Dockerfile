# One image for every service: jobs, MLFlask, MLDash and the MLflow server. CPU torch, runtime packages only.
FROM python:3.11-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 app \
 && mkdir -p /store /mlflow /app \
 && chown app:app /store /mlflow /app

WORKDIR /app
COPY requirements.lock ./
# The CPU wheel first (its version is the lock's torch line): the lock's torch pin is then already satisfied.
RUN pip install --no-cache-dir "$(sed -n 's/^\(torch==[0-9.]*\)  .*/\1/p' requirements.lock)" \
      --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.lock

COPY --chown=app:app . .
RUN pip install --no-cache-dir --no-deps .

# .git is not copied into the image, so the commit that runs are tagged with comes in as a build arg.
ARG GIT_COMMIT=unknown
USER app
ENV PYTHONUNBUFFERED=1 \
    GIT_COMMIT=${GIT_COMMIT} \
    DATA_CACHE_DIR=/home/app/.cache/mlplatform

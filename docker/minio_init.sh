#!/bin/sh
# minio-init: the bucket, and one MinIO user per service with a policy on its own prefix. The policies are the
# templates in env/minio with @BUCKET@ and @PREFIX@ filled from AWS_BUCKET and LAKE_PREFIX; any failure stops the
# start (a policy already attached is the one failure that is not one).
#   RENDER_ONLY=<dir> sh docker/minio_init.sh    # only write the filled-in policies to <dir> (the tests use it)
set -eu
out=${RENDER_ONLY:-/tmp/policies}
mkdir -p "$out"
for template in "${POLICY_TEMPLATES:-/policies}"/*.json; do
  sed -e "s|@BUCKET@|$BUCKET|g" -e "s|@PREFIX@|$PREFIX|g" "$template" > "$out/$(basename "$template")"
done
[ -z "${RENDER_ONLY:-}" ] || exit 0

mc alias set lake http://minio:9000 "$ROOT_USER" "$ROOT_PASSWORD" >/dev/null
mc mb --ignore-existing "lake/$BUCKET"
grant() {  # user secret policy
  mc admin user add lake "$1" "$2"
  mc admin policy create lake "$3" "$out/$3.json"  # replaces one of that name: a new bucket or prefix takes effect
  if ! answer=$(mc admin policy attach lake "$3" --user "$1" 2>&1); then
    case "$answer" in
      *"already in effect"*|*"already attached"*) ;;
      *) echo "minio-init: attaching $3 to $1 failed: $answer" >&2; exit 1 ;;
    esac
  fi
}
grant "$MLFLOW_S3_USER" "$MLFLOW_S3_SECRET" mlflow-artifacts
grant "$LAKE_S3_USER" "$LAKE_S3_SECRET" lake-jobs
grant "$LAKE_READER_S3_USER" "$LAKE_READER_S3_SECRET" lake-read
grant "$LAKE_LOGGER_S3_USER" "$LAKE_LOGGER_S3_SECRET" lake-log
echo "minio-init: $BUCKET ready, policies on $BUCKET/$PREFIX and $BUCKET/mlartifacts"

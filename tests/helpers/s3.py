"""Buckets on the tests' S3 endpoint (moto's server, over HTTP): one factory, the same test credentials."""

from __future__ import annotations

import uuid

import boto3

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-key", "AWS_SECRET_ACCESS_KEY": "testing-secret-value"}
REGION = "us-east-1"


def make_bucket(endpoint: str, prefix: str = "lake", name: str | None = None) -> str:
    """Create a bucket (`name`, else `<prefix>-<random>`) on `endpoint`; returns its name."""
    bucket = name or f"{prefix}-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=bucket)
    return bucket


def lake_env(endpoint: str, bucket: str) -> dict[str, str]:
    """The platform's variables for an S3 lake in `bucket`."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "AWS_BUCKET": bucket, "AWS_REGION_NAME": REGION}

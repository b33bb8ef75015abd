"""What the tests share besides fixtures: starting services (`services`) and S3 buckets (`s3`)."""

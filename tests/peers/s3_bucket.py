"""Creates an S3 bucket with Object Lock on and a default COMPLIANCE retention, the way
SECURITY.md asks operators to set up the audit bucket. Used by the tests against a real
S3-compatible server on loopback.

usage: s3_bucket.py ENDPOINT BUCKET [--no-lock]
"""
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
lock = "--no-lock" not in sys.argv[3:]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
if not lock:
    s3.create_bucket(Bucket=bucket)
    print("ok")
    sys.exit(0)
s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
s3.put_object_lock_configuration(
    Bucket=bucket,
    ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
    },
)
print("ok")

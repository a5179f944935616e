"""Test environment, set on import: tests/conftest.py imports this before anything from chalicelib.

Never reach a real AWS account from the tests, and let no inherited WOD_* variable change the settings.
"""
import os

REGION = "us-east-1"

os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION,
                  AWS_SECURITY_TOKEN="testing", AWS_SESSION_TOKEN="testing", POWERTOOLS_LOG_LEVEL="WARNING",
                  POWERTOOLS_METRICS_DISABLED="true")
for name in [n for n in os.environ if n.startswith("WOD_")]:
    del os.environ[name]

"""Structured logging for every function (Powertools Logger), in one place."""
from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="wod-platform")  # not "wod": that name is Chalice's own app logger

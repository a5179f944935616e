"""Structured logging for every function (Powertools Logger), in one place."""
from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="wod")

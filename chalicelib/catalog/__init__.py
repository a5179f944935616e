"""Workshops as folders: validate ``workshops/<ID>/`` and sync them into DynamoDB."""

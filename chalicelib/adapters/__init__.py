"""Adapters: AWS services and other outside systems behind domain verbs."""

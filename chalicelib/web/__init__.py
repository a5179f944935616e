"""Participant-facing HTTP: JSON API and server-rendered pages."""

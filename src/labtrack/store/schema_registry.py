"""Schema migrations of the model registry area (see store.schema for the conventions)."""

from __future__ import annotations

REGISTRY: list[list[str]] = []

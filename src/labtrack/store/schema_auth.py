"""Schema migrations of the identity and access area (see store.schema for the conventions)."""

from __future__ import annotations

AUTH: list[list[str]] = []

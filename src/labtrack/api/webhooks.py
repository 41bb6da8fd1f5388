"""Routes of this area; see the issue that builds it."""

from __future__ import annotations

from labtrack.http import RouteTable

routes = RouteTable()

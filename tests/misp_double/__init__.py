"""Test doubles and real test data for the MISP API (see ``server``, ``circl``, ``zeek_expect``)."""

from __future__ import annotations

from .server import MispDouble, generate_events

__all__ = ["MispDouble", "generate_events"]

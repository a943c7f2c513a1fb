"""A Kibana / OpenSearch Dashboards API double (``server``), and where the SOC's saved objects are.

``roles/kibana/files/dashboards/`` holds the collection's own saved objects, which the
``kibana`` role imports, in the export format of each product (no package on PyPI or
npm ships real Kibana or OpenSearch Dashboards exports): ``wlcg-soc-zeek.ndjson`` as Kibana 8 exports it (keys sorted,
``coreMigrationVersion``/``typeMigrationVersion``/``managed``/``created_at``, referenced
objects first, the export details line last) with two data views, a saved search, an
aggregation-based table, a markdown panel, a Lens chart and the "WLCG SOC - Zeek
overview" dashboard; ``wlcg-soc-zeek-dashboards.ndjson`` as OpenSearch Dashboards 2
exports it (``migrationVersion``, no ``excludedObjects`` in the details line). The
tests use these two; the role ships more dashboards beside them (flows, MISP hits, Zeek
capture loss), each file in both formats.
"""

from __future__ import annotations

from pathlib import Path

from .server import KibanaDouble

DATA = Path(__file__).resolve().parents[2] / "roles/kibana/files/dashboards"
KIBANA_EXPORT = DATA / "wlcg-soc-zeek.ndjson"
DASHBOARDS_EXPORT = DATA / "wlcg-soc-zeek-dashboards.ndjson"

__all__ = ["DASHBOARDS_EXPORT", "DATA", "KIBANA_EXPORT", "KibanaDouble"]

"""A Kibana 8 / OpenSearch Dashboards 2 API double: a pure-stdlib HTTP server.

This module is the double's entry point; the code is split by concern: ``store`` (saved
objects and spaces), ``endpoints`` (the API) and ``http`` (``KibanaDouble``:
authentication, xsrf check, request log, fault injection, serving).

Neither product can run on these machines, so the Kibana modules are tested against this
double. Its behaviour follows the products' own documentation and code (repositories
elastic/kibana and opensearch-project/OpenSearch-Dashboards), not what a client expects:

* Saved objects import (``POST /api/saved_objects/_import``): docs
  ``docs/api/saved-objects/import.asciidoc``; route
  ``core-saved-objects-server-internal/src/routes/import.ts`` (query schema with
  ``overwrite``/``createNewCopies``/``compatibilityMode`` and the error text ``cannot use
  [overwrite] with [createNewCopies]``; ``Invalid file extension .json`` for a file that is
  not ``.ndjson``; multipart only); importer ``import_saved_objects.ts`` and
  ``lib/collect_saved_objects.ts`` (``unsupported_type``; ``Non-unique import objects
  detected``), ``lib/validate_references.ts`` (only references to ``index-pattern`` and
  ``search`` are checked: ``missing_references``), ``lib/check_conflicts.ts``
  (``conflict`` unless ``overwrite``; ``overwrite: true`` in the results),
  ``lib/regenerate_ids.ts`` (``createNewCopies``: new ids, ``destinationId``) and
  ``lib/create_saved_objects.ts``: when any object has a conflict, an ambiguous conflict or
  missing references Kibana writes *none* of the objects, yet still counts the others in
  ``successCount`` and lists them in ``successResults``; after other errors
  (``unsupported_type``) the other objects are written. The answer is HTTP 200 in all
  these cases, with ``success: false`` and ``errors``.
* Error bodies are hapi Boom payloads ``{"statusCode", "error", "message"}``; the xsrf
  check (``http/lifecycle_handlers.ts``: post-auth, only for methods that change state,
  ``kbn-xsrf`` or ``kbn-version`` on Kibana, ``osd-xsrf`` or ``osd-version`` on Dashboards)
  answers 400 ``Request must contain a kbn-xsrf header.`` (``osd-xsrf`` on Dashboards).
* Authentication: no credentials give 401 ``{"statusCode":401,"error":"Unauthorized",
  "message":"Unauthorized"}``; wrong basic credentials on Kibana give 401 with the
  Elasticsearch ``security_exception`` text that names the user (``unable to authenticate
  user [<name>] for REST request [/_security/_authenticate]``). API keys
  (``Authorization: ApiKey``) and bearer tokens are accepted on Kibana.
* ``_bulk_get`` (``docs/api/saved-objects/bulk_get.asciidoc``, route ``bulk_get.ts``):
  entries in request order; a missing object is ``{"id","type","error":{"statusCode":404,
  "error":"Not Found","message":"Saved object [type/id] not found"}}``; an unknown type
  gives a 400 error entry ``Unsupported saved object type: '<type>': Bad Request``.
* ``_export`` (route ``export.ts``, ``saved_objects_exporter.ts``, ``sort_objects.ts``):
  NDJSON with sorted keys (json-stable-stringify), without ``namespaces``, referenced
  objects before the objects that refer to them, then the export details line; objects
  that cannot be fetched give 400 ``Error fetching objects to export``.
* ``_find``, single-object ``GET/POST/PUT/DELETE /api/saved_objects/<type>/<id>``.
* Spaces (``/api/spaces/space``; ``/s/<space>/`` URL prefix): an unknown space is 404
  ``Saved object [space/<id>] not found`` on the spaces API. Like Kibana, the saved object
  and data view APIs do *not* check that the space exists: they write into that
  namespace (elastic/kibana issues 67164 and 265063). ``strict_spaces=True`` makes them
  answer 404 instead.
* Data views (``docs/api/data-views/*.asciidoc``, ``rest_api_routes/public/*.ts``): stored
  as ``index-pattern`` saved objects; creating one whose name (or title) is taken gives
  400 ``Duplicate data view: <name>`` unless ``override``; a missing one is 404
  ``Saved object [index-pattern/<id>] not found``; updates change only the given fields.
* ``engine="opensearch"``: OpenSearch Dashboards 2 (forked from Kibana 7.10.2): no spaces
  API and no ``/s/`` prefix, no data views API (index patterns are saved objects), objects
  carry ``migrationVersion`` instead of ``coreMigrationVersion``/``typeMigrationVersion``,
  import errors carry a top-level ``title`` as in 7.10, no ``warnings`` in import answers,
  export details without ``excludedObjects``.

Not modelled: migrations (stored attributes are what was imported; only the migration
version fields are raised to the type's current one), ``compatibilityMode`` legacy URL
aliases, multi-namespace types and origin conflicts (``ambiguous_conflict``),
``_resolve_import_errors``, authorisation by feature privileges (``read_only_users`` get
403 on every write), the import size limit in bytes, ``search`` syntax of ``_find`` beyond
a plain or quoted term with a trailing ``*``.
"""

from __future__ import annotations

from .http import KibanaDouble
from .store import DASHBOARDS_VERSION, KIBANA_VERSION, ApiError

__all__ = ["DASHBOARDS_VERSION", "KIBANA_VERSION", "ApiError", "KibanaDouble"]

"""A MISP API double: a pure-stdlib HTTP(S) server that answers like MISP 2.5.

This module is the double's entry point; the code is split by concern: ``php`` (MISP's
PHP semantics), ``store`` (events, tags, organisations and the search index), ``search``
(restSearch parameters and attribute search), ``endpoints`` (the controllers),
``http`` (``MispDouble``: key check, request log, fault injection, serving) and
``generate`` (synthetic events).

Every behaviour here was taken from MISP's own code (repository MISP/MISP), not from
what a client expects:

* Authentication, 403 body, bad-JSON 405, POST-without-data 400 and the
  ``X-Result-Count`` header: ``app/Controller/AppController.php`` (``beforeFilter``,
  ``_harvestParameters``, ``restSearch``) and ``RestResponseComponent::throwException``.
* Which filter keys ``/attributes/restSearch`` accepts (others are dropped silently):
  ``app/Controller/Component/RestSearchComponent.php`` (``$paramArray['Attribute']``).
* Attribute restSearch: ``app/Model/MispAttribute.php`` (``restSearch``,
  ``buildFilterConditions``, ``__iteratedFetch``, ``fetchAttributes``,
  ``set_filter_tags``, ``set_filter_uuid``, ``setTimestampConditions``,
  ``dissectArgs``), ``app/Model/Event.php`` (``set_filter_type``, ``set_filter_org``,
  ``set_filter_eventid``, ``set_filter_published``, ``set_filter_to_ids``,
  ``set_filter_deleted``, ``set_filter_value``, ``set_filter_timestamp``),
  ``app/Model/AppModel.php`` (``generic_add_filter``, ``convert_filters``,
  ``resolveTimeDelta``), ``app/Model/Tag.php`` (``findTagIdsByTagNames``: tag names are
  matched with SQL ``LIKE`` on a case-insensitive column) and the JSON layout of
  ``app/Lib/Export/JsonExport.php``. Column collations (case sensitivity) follow
  ``INSTALL/MYSQL.sql``.
* Events: ``app/Controller/EventsController.php`` (``add``, ``edit``, ``view``,
  ``publish``), ``Event::_add``/``_edit``/``unpublishEvent``; objects:
  ``ObjectsController::add``; attributes: ``AttributesController::add``; tags:
  ``TagsController::attachTagToObject``; ``ServersController::getVersion``.
* Sightings: ``SightingsController::add`` (REST), ``Sighting::saveSightings``,
  ``Sighting::restSearch`` and ``getSightings`` (through ``AppController::restSearch``
  and ``JsonExport``); their rows follow the ``sightings`` table of
  ``INSTALL/MYSQL.sql``, every column a string (``PDO::ATTR_STRINGIFY_FETCHES``).

Notable MISP behaviours this double reproduces on purpose:

* ``X-Result-Count`` is *not* the total when ``limit`` is set: MISP returns the number
  of rows of the page, plus one when the page is full, and 1 for an empty page
  (``__iteratedFetch``; MISP issue #9422). Without ``limit`` it is the total.
* ``published: false`` and ``to_ids: false`` are ignored (no filter), because
  ``buildFilterConditions`` skips parameters that are ``=== false``; ``0``/``"0"``
  do filter.
* Boolean columns compare through CakePHP's ``!empty()``: ``"false"`` means true.
* ``type`` containing ``email-src`` or ``email-dst`` also matches ``email``.
* ``enforceWarninglist`` drops, after the paged query, the values that the double's
  warninglists (``load_warninglist``, misp-warninglists' list.json format) match, as
  ``Warninglist::filterWarninglistAttribute`` does: so a page can come short, and its
  X-Result-Count counts the rows before (``MispAttribute::fetchAttributes``).
* ``value`` is compared with ``value1`` and ``value2`` separately (a full composite
  value such as ``"1.2.3.4|80"`` does not match), and ``NOT`` values are mangled as in
  ``Event::set_filter_value`` (first character dropped), so they never exclude.
* A tag filter whose positive tags all do not exist returns nothing; negated tags that
  do not exist are ignored; ``AND`` tags must all exist.
* ``/sightings/add`` answers HTTP 200 also when it saves nothing (``{"message": "Could
  not add the Sighting. Reason: ..."}``); by value it sights every attribute, deleted
  ones and those of any event included, whose ``value1`` or ``value2`` equals a value
  case-insensitively; only the string ``"2"`` as type replaces the org's earlier
  expirations (MISP compares with ``===``).
* ``/sightings/restSearch`` defaults to the last 30 days, takes ``id`` only as a JSON
  integer (also without a context, where ``id`` and ``uuid`` then filter nothing),
  answers 500 for a single (not list) ``uuid`` in the event context (CakePHP renders
  ``IN 'x'``), and its ``org_id`` matches by organisation uuid only: a numeric id
  matches nothing.

What the double does NOT implement: the filters in ``NOT_IMPLEMENTED_PARAMS`` (answered
with HTTP 501 when set to a non-empty value, instead of a silently wrong result);
returnFormats other than json (501; unknown formats get MISP's 404); ACLs,
distribution and sharing groups (the user is a site admin of the local org);
``includeWarninglistHits``; proposals, galaxies, correlations, attachments, event
reports, object references; of sightings, all but ``/sightings/add`` and
``/sightings/restSearch`` (json): they are not attached to events or attributes in
other answers nor taken from events sent in, STIX sightings, ``filters`` on add and
time filters other than numbers, d/h/m/s deltas and ISO 8601 dates get 501, and other
methods than POST on ``/sightings/add`` get 405 (MISP describes the API); object
template validation and most attribute value validation; attribute filters of
``/events/restSearch`` (501); the ``X-MISP-AUTH`` header; MySQL's accent-insensitive
and trailing-space-insensitive comparisons (case-insensitivity is modelled). Relative
time filters are resolved when a result is first computed and cached (``cache_ttl``,
default 60 s, dropped on every write).
"""

from __future__ import annotations

from .endpoints import MISP_VERSION
from .generate import generate_events
from .http import MispDouble
from .php import MispError
from .search import misp_result_count

__all__ = ["MISP_VERSION", "MispDouble", "MispError", "generate_events", "misp_result_count"]

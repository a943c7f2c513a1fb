# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every API module (elasticsearch_*, kibana_*) shares to compare, plan, write and
report: the present/absent flow and the ``--diff`` it shows. Importable without Ansible."""

from __future__ import annotations

import json
from typing import Any, Callable

UNREAD = object()  # reconcile(): the caller has not read the object


def as_json(value: Any) -> str:
    """Stable JSON for the diff (sorted keys, indented, newline at the end); "" for nothing."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def diff_of(header: str, before: Any, after: Any) -> dict:
    """A module result's ``diff``: None (nothing) on either side shows as empty."""
    return {"before": as_json(before), "after": as_json(after), "before_header": header, "after_header": header}


def plan(state: str, exists: bool, before: Any, after: Any) -> str:
    """What to do: ``create``, ``update``, ``delete`` or ``none``."""
    if state == "absent":
        return "delete" if exists else "none"
    if not exists:
        return "create"
    return "none" if before == after else "update"


def reconcile(
    module: Any,
    result: dict,
    header: str,
    warning: str,
    desired: Any,
    read: Callable[[], Any],
    compare: Callable[[Any, Any], tuple],
    write: Callable[[Any], Any],
    delete: Callable[[Any], None],
    read_back: bool = True,
    stored: Any = UNREAD,
) -> tuple[Any, Any]:
    """The modules' present/absent flow for one object; fills ``result`` (``operation``,
    ``changed``, ``diff``) and returns (before, after): the managed object before and
    after the run, compared form, None where there is none.

    ``read`` returns the stored object or None; ``compare(desired, stored)`` returns both
    in compared form (``stored`` is ``{}`` when there is none); ``write(stored)`` stores
    ``desired`` (``stored`` None: create); ``delete(stored)`` removes it. After a write the
    object is read again, or, with ``read_back=False``, taken from what ``write`` returned.
    ``header`` titles the diff; ``warning`` is given when what was written compares
    differently from what was wanted. A caller that has read the object already passes it
    as ``stored`` (None: there is none), so that it is not fetched twice.
    """
    state = module.params["state"]
    if stored is UNREAD:
        stored = read()
    before, after = compare(desired, stored if stored is not None else {})
    if stored is None:
        before = None
    action = plan(state, stored is not None, before, after)
    if state == "absent":
        after = None
    result.update(operation=action, changed=action != "none")
    if module._diff and action != "none":
        result["diff"] = diff_of(header, before, after)
    if action in ("create", "update") and not module.check_mode:
        written = write(stored)
        stored_now, wanted = compare(desired, read() if read_back else written)
        if stored_now != wanted:
            module.warn(warning)
        after = stored_now
    elif action == "delete" and not module.check_mode:
        delete(stored)
    return before, after

"""MISP's PHP and CakePHP semantics the double reproduces: emptiness, numeric strings,
filter parsing (``convert_filters``, ``dissectArgs``), SQL ``LIKE``, time deltas, and
errors rendered as MISP renders them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

_PHP_NUMERIC = re.compile(r"^[ \t\n\r\v\f]*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?[ \t\n\r\v\f]*$")
UUID_RE = re.compile(r"^[a-fA-F0-9]{8}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{4}-[a-fA-F0-9]{12}$")
GALAXY_RE = re.compile(r'misp-galaxy:[^:="]+="[^"]+"', re.I)


class MispError(Exception):
    """An error answered the way MISP's CakePHP error handler renders it."""

    def __init__(self, status: int, name: str, url: str = "", extra: dict | None = None):
        super().__init__(name)
        self.status = status
        self.name = name
        self.url = url
        self.extra = extra or {}

    def body(self) -> dict:
        out = {"name": self.name, "message": self.name, "url": self.url}
        out.update(self.extra)
        return out


# --------------------------------------------------------------------------- PHP-isms


def php_empty(value: Any) -> bool:
    """PHP's ``empty()``."""
    if value is None or value is False:
        return True
    if value is True:
        return False
    if isinstance(value, int | float):
        return value == 0
    if isinstance(value, str):
        return value in ("", "0")
    if isinstance(value, list | dict | tuple):
        return len(value) == 0
    return False


def php_strval(value: Any) -> str:
    if value is True:
        return "1"
    if value is None or value is False:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def php_is_numeric(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and bool(_PHP_NUMERIC.match(value))


def php_int(value: Any) -> int:
    """(int) cast of a value as PHP/MySQL would do for a numeric comparison."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        if value.isdigit():
            return int(value)
        match = re.match(r"^\s*[+-]?\d+(\.\d*)?([eE][+-]?\d+)?", value)
        if match:
            return int(float(match.group(0)))
    return 0


def cake_bool(value: Any) -> int:
    """CakePHP's value() for a boolean (tinyint(1)) column: ``!empty($data)``."""
    return 0 if php_empty(value) else 1


def resolve_time_delta(delta: Any, now: int) -> int:
    """AppModel::resolveTimeDelta: '7d', '24h', '30m', '10s', epoch, or a date string."""
    if php_is_numeric(delta):
        return int(float(delta))
    text = php_strval(delta)
    multipliers = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    last = text[-1:].lower()
    if last and not last.isdigit() and last in multipliers:
        number = text[:-1]
        if not php_is_numeric(number):
            return now + 1
        return int(now - float(number) * multipliers[last])
    parsed = _strtotime(text)
    return parsed if parsed is not None else now + 1


def time_delta_modelled(delta: Any) -> bool:
    """Whether ``resolve_time_delta`` resolves ``delta`` as MISP does: a number, a value
    whose last character is d/h/m/s (MISP decides the delta branch on that character
    alone), '' (strtotime() fails), or an ISO 8601 date. Other strtotime() forms
    ('yesterday', '1 week ago') and non-strings are not modelled."""
    if php_is_numeric(delta):
        return True
    if not isinstance(delta, str):
        return False
    return delta == "" or delta[-1].lower() in ("d", "h", "m", "s") or _strtotime(delta) is not None


def _strtotime(text: str) -> int | None:
    """The subset of PHP's strtotime() that matters here: ISO 8601 dates (UTC)."""
    candidate = text.strip().replace("Z", "+00:00")
    if not candidate:
        return None
    try:
        parsed = dt.datetime.fromisoformat(candidate)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def convert_filters(value: Any) -> dict[str, list]:
    """AppModel::convert_filters: string 'a&&!b', list, or {OR, NOT, AND}."""
    if not isinstance(value, list | dict):
        out: dict[str, list] = {}
        for part in php_strval(value).split("&&"):
            if part != "":
                if part[0] == "!":
                    out.setdefault("NOT", []).append(part[1:])
                else:
                    out.setdefault("OR", []).append(part)
        return out
    if isinstance(value, dict) and any(k in value for k in ("OR", "NOT", "AND")):
        return {k: (v if isinstance(v, list) else [v]) for k, v in value.items() if k in ("OR", "NOT", "AND")}
    items = list(value.values()) if isinstance(value, dict) else value
    out = {}
    for param in items:
        text = php_strval(param)
        if not php_empty(text) and not (isinstance(param, int) and not isinstance(param, bool)):
            if text[0] == "!":
                out.setdefault("NOT", []).append(text[1:])
            else:
                out.setdefault("OR", []).append(text)
        elif param is not None:
            out.setdefault("OR", []).append(param)
    return out


def dissect_args(value: Any) -> tuple[list, list, list]:
    """MispAttribute::dissectArgs -> (OR, NOT, AND)."""
    if php_empty(value):
        return [], [], []
    if not isinstance(value, list | dict):
        value = php_strval(value).split("&&")
    if isinstance(value, dict) and any(k in value for k in ("OR", "NOT", "AND")):

        def as_list(v: Any) -> list:
            if php_empty(v):
                return []
            return v if isinstance(v, list) else [v]

        return as_list(value.get("OR")), as_list(value.get("NOT")), as_list(value.get("AND"))
    items = list(value.values()) if isinstance(value, dict) else value
    positive, negative = [], []
    for arg in items:
        if isinstance(arg, str) and arg[:1] == "!":
            negative.append(arg[1:])
        else:
            positive.append(arg)
    return positive, negative, []


def like_regex(pattern: str, case_insensitive: bool) -> re.Pattern:
    """SQL LIKE pattern ('%', '_', backslash escape) as a regular expression."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if char == "%":
            out.append(".*")
        elif char == "_":
            out.append(".")
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out), re.S | (re.I if case_insensitive else 0))


def _is_wildcard(item: Any) -> bool:
    return isinstance(item, str) and (item.startswith("%") or item.endswith("%"))


def generic_filter(filt: dict[str, list], case_insensitive: bool) -> Callable[[tuple], bool] | None:
    """AppModel::generic_add_filter as a predicate over the column values of a row.

    OR: any column equal to / LIKE any item. NOT: every column differs from / is NOT
    LIKE every item. AND (as MISP builds it): exact items behave like OR, a wildcard
    item needs LIKE *and* equality on every column. NULL columns never compare true.
    """
    if not any(k in filt for k in ("OR", "NOT", "AND")):
        return None

    def norm(v: Any) -> Any:
        if isinstance(v, str):
            return v.lower() if case_insensitive else v
        return php_strval(v).lower() if case_insensitive else php_strval(v)

    checks: list[Callable[[tuple], bool]] = []
    for operator, items in filt.items():
        items = items if isinstance(items, list) else [items]
        exact = {norm(i) for i in items if not _is_wildcard(i)}
        wild = [(like_regex(i, case_insensitive), norm(i)) for i in items if _is_wildcard(i)]
        if operator == "OR":

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                for col in cols:
                    if col is None:
                        continue
                    c = col.lower() if case_insensitive else col
                    if c in exact or any(rx.fullmatch(col) for rx, _literal in wild):
                        return True
                return False

        elif operator == "NOT":

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                for col in cols:
                    if col is None:
                        return False
                    c = col.lower() if case_insensitive else col
                    if c in exact or any(rx.fullmatch(col) for rx, _literal in wild):
                        return False
                return True

        else:  # AND

            def check(cols: tuple, exact=exact, wild=wild) -> bool:
                if exact and not any(
                    col is not None and (col.lower() if case_insensitive else col) in exact for col in cols
                ):
                    return False
                for rx, literal in wild:
                    for col in cols:
                        if col is None or not rx.fullmatch(col):
                            return False
                        if (col.lower() if case_insensitive else col) != literal:
                            return False
                return True

        checks.append(check)
    if len(checks) == 1:
        return checks[0]
    return lambda cols: all(c(cols) for c in checks)


def timestamp_predicate(value: Any, now: int) -> Callable[[int], bool] | None:
    """MispAttribute::setTimestampConditions as a predicate over an int column."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise MispError(500, "Invalid date specification, must be string or array with two elements")
        low, high = resolve_time_delta(value[0], now), resolve_time_delta(value[1], now)
        if low > high:
            low, high = high, low
        if low != 0:
            return lambda ts: low <= ts <= high
        return lambda ts: ts <= high
    threshold = resolve_time_delta(value, now)
    if threshold == 0:
        return None
    return lambda ts: ts >= threshold


def bool_in(value: Any) -> set[int]:
    """Values of a tinyint(1) column a condition ``col = value`` / ``IN`` accepts."""
    if isinstance(value, list):
        return {cake_bool(v) for v in value}
    return {cake_bool(value)}


def split_value(attr_type: str, value: str) -> tuple[str, str]:
    """value1/value2 as MispAttribute::beforeSave stores them (explode on '|')."""
    if "|" in attr_type or attr_type == "malware-sample":
        pieces = value.split("|")
        return pieces[0], pieces[1] if len(pieces) > 1 else ""
    return value, ""


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true")
    return bool(value)


def timestamp_of(value: Any, default: int) -> int:
    if value in (None, ""):
        return default
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return php_int(value)


# --------------------------------------------------------------------------- index


def status_name(status: int) -> str:
    if status >= 500:
        return "An Internal Error Has Occurred."
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden",
        404: "Not Found",
        405: "Method Not Allowed",
        429: "Too Many Requests",
    }.get(status, "Error")

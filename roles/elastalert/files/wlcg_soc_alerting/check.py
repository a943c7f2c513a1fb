# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of ElastAlert2's configuration and of a rule, before either replaces the one in use.

The role runs this as the ``validate`` command of the files it writes, so that a file that
fails here never reaches the running ElastAlert2:

- ``--config FILE`` alone: the configuration loads as ElastAlert2 loads it, and the search
  tier answers with its settings (address, TLS verification, the alerting user).
- ``--config CONFIG --rule FILE --name NAME``: the rule loads as ElastAlert2 loads it (its
  schema, options, rule type and alerters), no other rule in the rules folder has its name,
  and its filter runs once against the search tier over the last ``--minutes``; the alert's
  subject and text must render on a document it finds there.

A failure prints one line naming the rule and, for a schema error, the field, and exits 1.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from typing import Any

import jsonschema
import yaml
from elastalert.config import load_conf
from elastalert.elastalert import ElastAlerter
from elastalert.util import EAException, elasticsearch_client, ts_now


class CheckError(Exception):
    """The message to print."""


def _load_conf(path: str) -> dict[str, Any]:
    # load_conf reads only these of ElastAlert2's command line arguments.
    args = argparse.Namespace(config=path, debug=False, verbose=False, es_debug=False, es_debug_trace=None, rule=None)
    try:
        return load_conf(args)
    except (EAException, OSError, yaml.YAMLError) as exc:
        raise CheckError(f"configuration {path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())[:600]


def _schema_error(exc: BaseException) -> jsonschema.ValidationError | None:
    while exc is not None:
        if isinstance(exc, jsonschema.ValidationError):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _describe(exc: BaseException) -> str:
    invalid = _schema_error(exc)
    if invalid is None:
        return _first_line(exc)
    # The deepest error of an anyOf/oneOf names the field that is wrong.
    best = jsonschema.exceptions.best_match([invalid]) or invalid
    path = ".".join(str(part) for part in best.absolute_path)
    return f"field {path or '(the rule)'}: {_first_line(jsonschema.ValidationError(best.message))}"


def _ping(conf: dict[str, Any]) -> None:
    # Cluster health: the alerting role's cluster privileges allow it on both engines, and the
    # Elasticsearch test distribution refuses the root endpoint.
    try:
        elasticsearch_client(conf).cluster.health(request_timeout=20)
    except Exception as exc:  # any failure of the client means ElastAlert2 could not run
        raise CheckError(f"the search tier does not answer with these settings: {_first_line(exc)}") from None


def check_config(path: str) -> None:
    _ping(_load_conf(path))


def _other_names(rules_dir: str, name: str) -> dict[str, str]:
    """Rule name -> file of the other rules in the rules folder."""
    names = {}
    for entry in sorted(os.listdir(rules_dir)):
        if entry == name or not entry.endswith((".yaml", ".yml")) or entry.startswith("."):
            continue
        try:
            with open(os.path.join(rules_dir, entry), encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and "name" in data:
            names[str(data["name"])] = entry
    return names


def check_rule(config: str, path: str, name: str, minutes: int) -> None:
    conf = _load_conf(config)
    try:
        rule = conf["rules_loader"].load_configuration(path, conf)
    except Exception as exc:  # the loader raises what the rule's modules raise
        raise CheckError(f"rule {name}: {_describe(exc)}") from None
    clash = _other_names(conf["rules_folder"], name).get(str(rule["name"]))
    if clash:
        raise CheckError(f"rule {name}: field name: {rule['name']!r} is already the name of the rule in {clash}")
    end = ts_now()
    start = end - datetime.timedelta(minutes=minutes)
    query = ElastAlerter.get_query(
        rule["filter"],
        starttime=start,
        endtime=end,
        timestamp_field=rule["timestamp_field"],
        to_ts_func=rule["dt_to_ts"],
        sort=False,
    )
    try:
        found = elasticsearch_client(rule).search(
            index=ElastAlerter.get_index(rule, start, end),
            body=query,
            size=1,
            ignore_unavailable=True,
            request_timeout=30,
        )
    except Exception as exc:  # a refused query or an unreachable search tier alike
        raise CheckError(f"rule {name}: its filter fails on the search tier: {_first_line(exc)}") from None
    # A document the filter finds, as a match: the alert's subject and text must render on it.
    hits = found["hits"]["hits"]
    if hits and rule["alert"]:
        match = dict(hits[0]["_source"], _id=hits[0]["_id"], _index=hits[0]["_index"])
        try:
            rule["alert"][0].create_title([match])
            rule["alert"][0].create_alert_body([match])
        except Exception as exc:  # Jinja and format errors alike
            raise CheckError(
                f"rule {name}: its alert text fails on {match['_index']}/{match['_id']}: {_first_line(exc)}"
            ) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--config", required=True, help="ElastAlert2's config.yaml")
    parser.add_argument("--rule", help="the rule file to check")
    parser.add_argument("--name", help="the rule's file name in the rules folder (for messages)")
    parser.add_argument("--minutes", type=int, default=15, help="the dry run's window")
    args = parser.parse_args(argv)
    try:
        if args.rule:
            check_rule(args.config, args.rule, args.name or os.path.basename(args.rule), args.minutes)
        else:
            check_config(args.config)
    except CheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

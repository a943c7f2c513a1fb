# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SOC's own ElastAlert2 alerters.

- ``AlertsIndexAlerter``: every match as an ECS document in the data stream
  ``wlcg_soc_alerts_data_stream`` (alerts-<namespace>), which the dashboards read.
- ``VerifiedEmailAlerter``: mail over SMTP with STARTTLS or TLS whose server certificate is
  verified (ElastAlert2's own email alerter encrypts without checking the certificate
  unless a client certificate is given).
- ``MispSightingAlerter``: a sighting in MISP of each indicator an alert names, so that the
  sharing community learns it was seen (the collection's MISP client, PyMISP underneath).
"""

from __future__ import annotations

import datetime
import smtplib
import ssl
import threading
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from elastalert.alerts import Alerter
from elastalert.util import EAException, elastalert_logger, elasticsearch_client, lookup_es_key, ts_to_dt
from elastalert.yaml import read_yaml

from .misp import MispError, call, connect

# Fields of the matched document an alert document carries, for the dashboards and for
# pivoting back to the traffic (the alerts-* template maps them as in zeek-* and flows-*).
COPIED_FIELDS = (
    "source",
    "destination",
    "network",
    "related",
    "host",
    "observer",
    "threat",
    "misp",
    "dns",
    "url",
    "tls",
    "file",
    "user_agent",
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_document(rule: dict[str, Any], match: dict[str, Any], title: str, text: str) -> dict[str, Any]:
    """The alerts-* document of one match: ``message`` the alert's subject, ``event.reason`` its text."""
    now = _now()
    event: dict[str, Any] = {
        "kind": "alert",
        "module": "elastalert",
        "dataset": "elastalert.alert",
        "created": now,
        "severity": int(rule.get("wlcg_soc_severity", 47)),
        "reason": text.strip(),
    }
    start = lookup_es_key(match, rule.get("timestamp_field", "@timestamp"))
    if start is not None:
        event["start"] = start if isinstance(start, str) else str(start)
    rule_info: dict[str, Any] = {"name": rule["name"], "ruleset": "wlcg.soc"}
    if rule.get("rule_file"):
        rule_info["id"] = str(rule["rule_file"]).rsplit("/", 1)[-1].rsplit(".", 1)[0]
    for key, field in (("description", "description"), ("category", "wlcg_soc_category")):
        if rule.get(field):
            rule_info[key] = rule[field]
    original: dict[str, Any] = {}
    for key in ("_id", "_index"):
        if match.get(key):
            original[key.lstrip("_")] = match[key]
    dataset = lookup_es_key(match, "event.dataset")
    if dataset:
        original["dataset"] = dataset
    document: dict[str, Any] = {"@timestamp": now, "event": event, "rule": rule_info, "message": title}
    for field in COPIED_FIELDS:
        if isinstance(match.get(field), dict):
            document[field] = match[field]
    # Flatline and compound-key matches carry the key's field flat (``host.name``), or only as
    # ``key`` (a flatline of a key that went silent): nested here.
    query_key = rule.get("query_key")
    flat = dict(match)
    if isinstance(query_key, str) and "," not in query_key and match.get("key") is not None:
        flat.setdefault(query_key, match["key"])
    for name, value in flat.items():
        parts = name.split(".")
        if len(parts) > 1 and parts[0] in COPIED_FIELDS and "," not in name and not isinstance(value, (dict, list)):
            node = document
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node.setdefault(parts[-1], value)
    alert: dict[str, Any] = {}
    if original:
        alert["original_event"] = original
    if query_key:
        # A flatline match carries its silent key as `key`; ElastAlert2 adds a compound key's
        # joined values to the match under the compound name.
        key = match.get("key") if "key" in match else match.get(query_key)
        alert["key"] = key if key is not None else lookup_es_key(match, query_key)
    for key in ("count", "num_hits", "num_matches"):
        if isinstance(match.get(key), int):
            alert[key] = match[key]
    if alert:
        document["alert"] = alert
    return document


class AlertsIndexAlerter(Alerter):
    """Each match as a document in the alerts data stream (op_type create, as data streams want)."""

    required_options = frozenset(["wlcg_soc_alerts_data_stream"])

    def alert(self, matches: list[dict[str, Any]]) -> None:
        client = elasticsearch_client(self.rule)
        stream = self.rule["wlcg_soc_alerts_data_stream"]
        for match in matches:
            document = alert_document(self.rule, match, self.create_title([match]), self.create_alert_body([match]))
            try:
                client.index(index=stream, body=document, op_type="create", request_timeout=30)
            except Exception as exc:  # ElastAlert2 keeps the alert and retries it
                raise EAException(f"cannot write the alert to {stream}: {exc}") from exc
        elastalert_logger.info("Wrote %d alert document(s) to %s", len(matches), stream)

    def get_info(self) -> dict[str, Any]:
        return {"type": "wlcg_soc_alerts_index", "data_stream": self.rule["wlcg_soc_alerts_data_stream"]}


class VerifiedEmailAlerter(Alerter):
    """Mail through an SMTP server whose certificate is verified.

    Options (ElastAlert2's email alerter's names where it has them): ``email`` (list or
    string), ``from_addr``, ``email_reply_to``, ``cc``, ``bcc``, ``smtp_host``, ``smtp_port``,
    ``smtp_auth_file`` (YAML with ``user`` and ``password``); and ``smtp_security``
    (``starttls``: STARTTLS required; ``tls``: TLS from the start; ``none``: plain, for a
    relay on a trusted path), ``smtp_ca_certs`` (the CA bundle to verify the server with).
    """

    required_options = frozenset(["email", "smtp_host", "smtp_port", "smtp_security"])

    def __init__(self, rule: dict[str, Any]) -> None:
        super().__init__(rule)
        to = rule["email"]
        self.to = [to] if isinstance(to, str) else list(to)
        self.security = rule["smtp_security"]
        if self.security not in ("starttls", "tls", "none"):
            raise EAException(f"smtp_security must be starttls, tls or none, not {self.security!r}")
        self.user = self.password = None
        if rule.get("smtp_auth_file"):
            account = read_yaml(rule["smtp_auth_file"])
            if "user" not in account or "password" not in account:
                raise EAException("smtp_auth_file must have user and password")
            self.user, self.password = account["user"], account["password"]

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.rule.get("smtp_ca_certs") or None)

    def _connect(self) -> smtplib.SMTP:
        host, port = self.rule["smtp_host"], int(self.rule["smtp_port"])
        if self.security == "tls":
            return smtplib.SMTP_SSL(host, port, timeout=30, context=self._context())
        server = smtplib.SMTP(host, port, timeout=30)
        if self.security == "starttls":
            server.ehlo()
            if not server.has_extn("starttls"):
                server.quit()
                raise EAException(f"the SMTP server {host}:{port} does not offer STARTTLS")
            server.starttls(context=self._context())
            server.ehlo()
        return server

    def alert(self, matches: list[dict[str, Any]]) -> None:
        message = EmailMessage()
        message["Subject"] = self.create_title(matches)
        message["From"] = self.rule.get("from_addr", "elastalert")
        message["To"] = ", ".join(self.to)
        if self.rule.get("cc"):
            message["Cc"] = ", ".join(self.rule["cc"])
        message["Reply-To"] = self.rule.get("email_reply_to", message["To"])
        message["Date"] = formatdate()
        message["Message-ID"] = make_msgid(domain=str(message["From"]).rpartition("@")[2] or None)
        message.set_content(self.create_alert_body(matches))
        recipients = self.to + list(self.rule.get("cc", [])) + list(self.rule.get("bcc", []))
        try:
            server = self._connect()
            try:
                if self.user is not None:
                    server.login(self.user, self.password)
                server.send_message(message, to_addrs=recipients)
            finally:
                server.quit()
        except (OSError, smtplib.SMTPException) as exc:
            raise EAException(f"cannot send the alert mail through {self.rule['smtp_host']}: {exc}") from exc
        elastalert_logger.info("Sent email to %s", recipients)

    def get_info(self) -> dict[str, Any]:
        return {"type": "wlcg_soc_email", "recipients": self.to}


# MISP's answer (HTTP 200) when no attribute has the value: the indicator left MISP since it
# was exported. Not a failure of the alerter.
NO_ATTRIBUTE = "No valid attributes found"


class MispSightingAlerter(Alerter):
    """A sighting (type 0, "seen") in MISP of each indicator of the matches.

    Options: ``misp_url``, ``misp_key_file`` (the key on its first line), ``misp_ca_certs``
    (CA bundle; empty - the system trust store), ``misp_timeout`` (seconds),
    ``misp_sighting_source`` (the sighting's source, as the community sees it) and
    ``misp_sighting_field`` (the match's field that holds the indicator, a value or a list;
    default: the rule's ``query_key``). MISP adds the sighting to every attribute with the
    value that the key's user can see.

    Sightings are best effort: a failure (MISP down, key refused) is logged and the alert
    goes on, so that the other alerters' messages are not sent again on ElastAlert2's retry.
    """

    required_options = frozenset(["misp_url", "misp_key_file", "misp_sighting_source"])

    def __init__(self, rule: dict[str, Any]) -> None:
        super().__init__(rule)
        field = rule.get("misp_sighting_field") or rule.get("query_key")
        if not isinstance(field, str) or not field or "," in field:
            raise EAException(
                f"rule {rule.get('name')}: misp_sighting_field (or a single-field query_key) must name the field "
                "that holds the indicator"
            )
        self.field = field
        try:
            with open(rule["misp_key_file"], encoding="utf-8") as handle:
                self.key = handle.readline().strip()
        except OSError as exc:
            raise EAException(f"cannot read misp_key_file {rule['misp_key_file']}: {exc.strerror}") from None
        if not self.key:
            raise EAException(f"misp_key_file {rule['misp_key_file']} has no key on its first line")
        self._lock = threading.Lock()
        self._misp: Any = None

    def _client(self) -> Any:
        # Connected at the first alert, not at rule load: MISP down must not stop the rules.
        with self._lock:
            if self._misp is None:
                self._misp = connect(
                    self.rule["misp_url"],
                    self.key,
                    ca_path=self.rule.get("misp_ca_certs") or None,
                    timeout=float(self.rule.get("misp_timeout", 30)),
                    tool="wlcg.soc elastalert",
                )
            return self._misp

    def indicators(self, matches: list[dict[str, Any]]) -> dict[str, int]:
        """Each indicator of the matches with the epoch second it was last seen."""
        seen: dict[str, int] = {}
        now = int(datetime.datetime.now().timestamp())
        for match in matches:
            value = lookup_es_key(match, self.field)
            values = value if isinstance(value, list) else [value]
            stamp = lookup_es_key(match, self.rule.get("timestamp_field", "@timestamp"))
            try:
                when = int(ts_to_dt(stamp).timestamp()) if stamp else now
            except (TypeError, ValueError):
                when = now
            for item in values:
                if isinstance(item, (str, int)) and str(item).strip():
                    seen[str(item)] = max(when, seen.get(str(item), 0))
        return seen

    def alert(self, matches: list[dict[str, Any]]) -> None:
        source = str(self.rule["misp_sighting_source"])
        try:
            misp = self._client()
        except MispError as exc:
            elastalert_logger.error("No MISP sighting for rule %s: %s", self.rule["name"], exc)
            return
        for value, when in sorted(self.indicators(matches).items()):
            sighting = {"values": [value], "source": source, "timestamp": when, "type": "0"}
            try:
                answer = call(misp, f"sighting of {value}", misp.add_sighting, sighting)
            except MispError as exc:
                with self._lock:
                    self._misp = None  # connect again at the next alert
                elastalert_logger.error("No MISP sighting of %s: %s", value, exc)
                continue
            answer = answer if isinstance(answer, dict) else {}
            message = str(answer.get("message", ""))
            if isinstance(answer.get("Sighting"), dict):
                elastalert_logger.info("MISP sighting of %s added (source %s)", value, source)
            elif NO_ATTRIBUTE in message:
                elastalert_logger.warning("No MISP sighting of %s: no attribute in MISP has that value now", value)
            else:
                elastalert_logger.error(
                    "No MISP sighting of %s: MISP answered %s", value, message[:200] or "unexpectedly"
                )

    def get_info(self) -> dict[str, Any]:
        return {"type": "wlcg_soc_misp_sighting", "misp_url": self.rule["misp_url"], "field": self.field}

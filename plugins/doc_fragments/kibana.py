# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every module that talks to Kibana or OpenSearch Dashboards.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of Kibana or OpenSearch Dashboards, e.g. C(https://kibana.example.org:5601),
        including the base path when it is served under one.
    type: str
    required: true
  username:
    description:
      - User for HTTP basic authentication (with O(password)).
      - A failed login names this user; the password is never shown.
    type: str
  password:
    description:
      - Password of O(username). Keep it in Ansible Vault; it is never logged.
    type: str
  api_key:
    description:
      - Elasticsearch API key, sent in an C(Authorization) header of scheme C(ApiKey); the
        base64-encoded C(id:api_key) that Elasticsearch returns as C(encoded).
      - Instead of O(username) and O(password).
    type: str
  token:
    description:
      - Bearer token, such as a Kibana service account token, sent in an C(Authorization)
        header of scheme C(Bearer). Instead of O(username) and O(password).
    type: str
  validate_certs:
    description:
      - Verify the server's TLS certificate. Turn off only for a test instance.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle (PEM) to verify the server with, when its CA is not in the system
        trust store.
    type: path
  timeout:
    description:
      - Seconds to wait for each request.
    type: float
    default: 30
  retries:
    description:
      - How many times a request is repeated after a connection failure or an HTTP 502,
        503 or 504 answer (Kibana answers 503 while it starts), waiting 1, 2, 4... seconds
        (at most 10) in between. A request that changes something is repeated after a
        connection failure only when it cannot have reached the server.
    type: int
    default: 3
  flavor:
    description:
      - C(kibana) for Kibana 8, C(dashboards) for OpenSearch Dashboards 2.
      - Both get the C(kbn-xsrf) and the C(osd-xsrf) header; the flavor decides which APIs
        are used where the products differ (spaces, data views).
    type: str
    choices: [kibana, dashboards]
    default: kibana
notes:
  - Without O(username), O(api_key) or O(token) the requests carry no credentials, which
    works only where anonymous access is allowed.
"""

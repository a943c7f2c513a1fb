# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every module that talks to Elasticsearch or OpenSearch
    # (module_utils.search_client.search_argument_spec).
    DOCUMENTATION = r"""
options:
  hosts:
    description:
      - Base URLs of the cluster's HTTP endpoint, e.g. C(https://es01.example.org:9200).
        A URL without a scheme is taken as C(https://).
      - They are tried in order; a connection failure, HTTP 429 or an unavailable node
        (HTTP 502, 503, 504) moves on to the next one.
      - Credentials do not belong in the URL; use O(username) and O(password) or O(api_key).
    type: list
    elements: str
    default: [https://localhost:9200]
  username:
    description:
      - User for HTTP basic authentication. Named in the message when the server refuses it.
    type: str
  password:
    description:
      - Password of O(username). Keep it in Ansible Vault; it is never logged nor shown in
        a message.
    type: str
  api_key:
    description:
      - API key, either the encoded form the create API returns (base64 of C(id:api_key))
        or C(id:api_key). Sent in an C(Authorization) header of type C(ApiKey); never logged. A refused key
        is named by its id.
      - Mutually exclusive with O(username).
    type: str
  ca_path:
    description:
      - CA bundle (PEM) to verify the server's certificate with, when its CA is not in
        the system trust store.
    type: path
  validate_certs:
    description:
      - Verify the server's TLS certificate. Turn off only for a test cluster.
    type: bool
    default: true
  client_cert:
    description:
      - Client certificate (PEM) for TLS client authentication; may hold the key as well.
    type: path
  client_key:
    description:
      - Private key (PEM) of O(client_cert), when it is a file of its own.
    type: path
  timeout:
    description:
      - Seconds to wait for each HTTP request. A cluster health check asks the server to
        wait for the wanted status for half of it (at most 30 seconds).
    type: float
    default: 30
  retries:
    description:
      - How many more rounds over O(hosts) after the first one fails (connection error,
        HTTP 429, 502, 503, 504), and how many more cluster health checks while the
        cluster is red. The pause between rounds starts at one second and doubles.
    type: int
    default: 3
  engine:
    description:
      - Which engine the cluster runs. V(auto) asks the server (C(GET /)); naming it skips
        that request and fails if the server turns out to be the other one.
      - Elasticsearch 8.x and 9.x, OpenSearch 2.x.
    type: str
    choices: [auto, elasticsearch, opensearch]
    default: auto
notes:
  - Before it reads or writes anything the module waits, within O(timeout) and
    O(retries), for the cluster to be at least yellow, and fails with the cluster's
    health if it stays red. A user who may not read the cluster's health skips the wait.
  - Talks plain HTTP(S) with Python's standard library; no client library is needed on
    the host that runs the module (usually the controller, with C(delegate_to) or
    a local connection).
"""

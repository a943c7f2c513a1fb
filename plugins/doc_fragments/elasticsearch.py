# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that talks to Elasticsearch or OpenSearch, beside the
    # common ones of wlcg.soc.http_client (module_utils.search_client.search_argument_spec).
    DOCUMENTATION = r"""
options:
  hosts:
    description:
      - Base URLs of the cluster's HTTP endpoint, e.g. C(https://es01.example.org:9200).
        A URL without a scheme is taken as C(https://).
      - They are tried in order; a connection failure, HTTP 429 or an unavailable node
        (HTTP 502, 503, 504) moves on to the next one. O(retries) counts rounds over all
        of them, with the pause between rounds.
      - Credentials do not belong in the URL; use O(username) and O(password) or O(api_key).
    type: list
    elements: str
    default: [https://localhost:9200]
  client_cert:
    description:
      - Client certificate (PEM) for TLS client authentication; may hold the key as well.
    type: path
  client_key:
    description:
      - Private key (PEM) of O(client_cert), when it is a file of its own.
    type: path
  engine:
    description:
      - Which engine the cluster runs. V(auto) asks the server (C(GET /)); naming it skips
        that request and fails if the server turns out to be the other one.
      - Elasticsearch 8.x and 9.x, OpenSearch 2.x.
    type: str
    choices: [auto, elasticsearch, opensearch]
    default: auto
notes:
  - Before it reads or writes anything the module waits for the cluster to be at least
    yellow, and fails with the cluster's health if it stays red. The server waits for
    the status for half of O(timeout) (at most 30 seconds), O(retries) more times while
    the cluster is red. A user who may not read the cluster's health skips the wait.
  - O(username) and O(api_key) are mutually exclusive.
  - The C(elasticsearch_*) modules form the module group C(wlcg.soc.search), so a play, block or
    task may give their connection options once, in C(module_defaults) under
    C(group/wlcg.soc.search).
"""

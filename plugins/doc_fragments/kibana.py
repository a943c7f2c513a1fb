# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Options of every module that talks to Kibana or OpenSearch Dashboards, beside the
    # common ones of wlcg.soc.http_client (module_utils.kibana.kibana_argument_spec).
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of Kibana or OpenSearch Dashboards, e.g. C(https://kibana.example.org:5601),
        including the base path when it is served under one.
    type: str
    required: true
  token:
    description:
      - Bearer token, such as a Kibana service account token, sent in an C(Authorization)
        header of scheme C(Bearer). Instead of O(username) and O(password).
    type: str
  engine:
    description:
      - The search engine of the stack, as for the other modules and roles of the
        collection. V(elasticsearch) for Kibana 8, V(opensearch) for OpenSearch Dashboards 2.
      - Both get the C(kbn-xsrf) and the C(osd-xsrf) header; the engine decides which APIs
        are used where the products differ (spaces, data views).
    type: str
    choices: [elasticsearch, opensearch]
    default: elasticsearch
notes:
  - Without O(username), O(api_key) or O(token) the requests carry no credentials, which
    works only where anonymous access is allowed.
  - Kibana answers HTTP 503 while it starts; such requests are repeated within O(retries).
  - The C(kibana_*) modules form the module group C(wlcg.soc.kibana), so a play, block or
    task may give their connection options once, in C(module_defaults) under
    C(group/wlcg.soc.kibana).
"""

# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options every API module has (module_utils.transport.http_argument_spec),
    # next to the service's own fragment (wlcg.soc.elasticsearch, wlcg.soc.kibana).
    DOCUMENTATION = r"""
options:
  username:
    description:
      - User for HTTP basic authentication (with O(password)). Named in the message when
        the server refuses it.
    type: str
  password:
    description:
      - Password of O(username). Keep it in Ansible Vault; it is never logged nor shown in
        a message.
    type: str
  api_key:
    description:
      - API key, either the encoded form Elasticsearch's create API returns (base64 of
        C(id:api_key), its C(encoded) field) or C(id:api_key). Sent in an C(Authorization)
        header of type C(ApiKey); never logged. A refused key is named by its id.
      - Instead of O(username) and O(password).
    type: str
  ca_path:
    description:
      - CA bundle (PEM) to verify the server's certificate with, when its CA is not in
        the system trust store. The file must exist and be readable.
    type: path
  validate_certs:
    description:
      - Verify the server's TLS certificate. Turn off only for a test instance.
    type: bool
    default: true
  timeout:
    description:
      - Seconds one request may take as a whole (connecting, sending, following redirects
        and reading the whole answer); a server that answers too slowly is cut off then.
    type: float
    default: 30
  retries:
    description:
      - How many more times a request is tried after a connection failure or an HTTP 429,
        502, 503 or 504 answer, waiting 1, 2, 4... seconds in between, or what the server
        asks for in C(Retry-After), at most 30 seconds.
      - A request that may have reached the server is repeated only when repeating it is
        harmless (GET, HEAD, PUT, DELETE, and requests that only read); one that changes
        something otherwise (a POST) is repeated only when it cannot have been handled
        (the connection was refused, or the answer was 429 or 503).
    type: int
    default: 3
notes:
  - Redirects are followed only within the scheme, host and port of the configured URLs;
    a redirect anywhere else fails, naming both URLs, so that the credentials (and a client
    certificate) are never sent there. Set the URL to where the service answers.
  - An answer that is not the JSON the API gives (an HTML page of a web server or proxy at
    a wrong URL, say) fails the task, naming the URL, the status and the start of the body.
  - Talks plain HTTP(S) with Python's standard library; no client library is needed on
    the host that runs the module (usually the controller, with C(delegate_to) or a
    local connection).
"""

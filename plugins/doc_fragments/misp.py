# Copyright: contributors to wlcg.soc
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options of every module that talks to MISP.
    DOCUMENTATION = r"""
options:
  misp_url:
    description:
      - Base URL of the MISP instance, e.g. C(https://misp.example.org).
    type: str
    required: true
  misp_key:
    description:
      - MISP automation (API) key. Keep it in Ansible Vault; it is never logged.
    type: str
    required: true
  validate_certs:
    description:
      - Verify the MISP server's TLS certificate. Turn off only for a test instance.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle (PEM) to verify the MISP server with, when its CA is not in the
        system trust store.
      - Without it, the system trust store (OpenSSL's default CA file or directory, which
        the C(wlcg.soc.common) role extends with the site CA) is used, not the CA bundle
        that Python's requests library ships (certifi).
    type: path
  timeout:
    description:
      - Seconds to wait for each connection and each read of a MISP answer, not for the
        whole answer; C(misp_ioc_export) bounds its whole fetch with its own C(fetch_timeout).
    type: float
    default: 60
requirements:
  - pymisp
"""

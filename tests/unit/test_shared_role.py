"""wlcg.soc.shared's entry points that can run on this machine for real: `archive` (tar.gz
and zip from the controller, into temporary directories), `certificates` with the site's
own files, and `version` (an archive's link, and this machine's own dpkg); `platform` is
covered by every role's refusal test (conftest.assert_platform_refused).
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import ALMA9, DEBIAN12

ARCHIVE = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.shared
        tasks_from: archive
"""


def make_archive(path: Path, top: str) -> None:
    """A vendor-like archive: one top directory holding bin/tool."""
    body = b"#!/bin/sh\necho tool\n"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(f"{top}/bin/tool", body)
    else:
        with tarfile.open(path, "w:gz") as t:
            info = tarfile.TarInfo(f"{top}/bin/tool")
            info.size, info.mode = len(body), 0o755
            t.addfile(info, io.BytesIO(body))


def archive_vars(tmp_path: Path, src: str, version: str = "1.2.3", **extra) -> dict:
    root = tmp_path / "opt"
    return {
        "shared_archive_src": src,
        "shared_archive_root": str(root),
        "shared_archive_dir": f"{root}/tool-{version}",
        "shared_archive_link": f"{root}/tool",
        "shared_archive_creates": "bin/tool",
        "shared_archive_hint": "Check tool_version.",
        **extra,
    }


@pytest.mark.parametrize(
    ("name", "top"),
    [("tool-1.2.3-linux-x86_64.tar.gz", "tool-1.2.3-linux-x86_64"), ("tool-1.2.3.zip", "tool-1.2.3")],
    ids=["tar-strips-its-top-directory", "zip-named-as-the-version"],
)
def test_archive_unpacks_into_its_version_and_links_it(playbook, tmp_path, name, top):
    src = tmp_path / name
    make_archive(src, top)
    args = archive_vars(tmp_path, str(src))
    res = playbook(ARCHIVE, DEBIAN12, args, check=False)
    assert res.rc == 0, res.out
    root = tmp_path / "opt"
    assert (root / "tool-1.2.3/bin/tool").read_text().startswith("#!/bin/sh")
    assert (root / "tool").is_symlink() and (root / "tool").resolve() == (root / "tool-1.2.3").resolve()
    again = playbook(ARCHIVE, DEBIAN12, args, check=False)
    assert again.rc == 0 and "changed=0" in again.out, again.out


def test_archive_from_the_controller_in_check_mode_on_a_new_host(playbook, tmp_path):
    """An archive on the controller, in check mode, where its directories are only about to be
    made: nothing to unpack into, nothing refused, nothing made."""
    src = tmp_path / "tool-1.2.3-linux-x86_64.tar.gz"
    make_archive(src, "tool-1.2.3-linux-x86_64")
    res = playbook(ARCHIVE, DEBIAN12, archive_vars(tmp_path, str(src)), check=True)
    assert res.rc == 0, res.out
    assert "changed=" in res.out and "failed=0" in res.out, res.out
    assert not (tmp_path / "opt").exists()


def test_archive_of_another_version_is_refused(playbook, tmp_path):
    src = tmp_path / "tool-1.2.4.zip"
    make_archive(src, "tool-1.2.4")
    res = playbook(ARCHIVE, DEBIAN12, archive_vars(tmp_path, str(src)), check=False)
    assert res.rc != 0, res.out
    assert "did not unpack into" in res.out and "Check tool_version." in res.out, res.out
    assert not (tmp_path / "opt/tool").exists()


@pytest.mark.parametrize(
    "extra",
    [
        {"shared_archive_src": "https://example.org/tool-1.2.3.tar.gz"},
        {"shared_archive_src": "https://example.org/tool-1.2.3.tar.gz", "shared_archive_checksum": "md5:00"},
        {"shared_archive_src": "tool-1.2.3.tar.gz"},
        {"shared_archive_src": "/srv/tool-1.2.3.rpm"},
    ],
    ids=["url-without-checksum", "weak-checksum", "relative-path", "not-an-archive"],
)
def test_archive_source_is_checked_first(playbook, tmp_path, extra):
    res = playbook(ARCHIVE, DEBIAN12, archive_vars(tmp_path, "", **extra), check=False)
    assert res.rc != 0, res.out
    assert "needs its checksum as ALGORITHM:HEX" in res.out, res.out
    assert not (tmp_path / "opt").exists()


VERSION = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.shared
        tasks_from: version
    - ansible.builtin.debug:
        msg: "installed=[{{ shared_version_installed }}]"
"""


@pytest.mark.parametrize(
    ("linked", "wanted", "installed", "problem"),
    [
        (None, "1.2.3", "", ""),
        ("tool-1.2.3", "1.2.3", "1.2.3", ""),
        ("tool-1.2.3", "1.3.0", "1.2.3", ""),
        ("tool-1.2.3", "1.2.2", "1.2.3", "tool_version (1.2.2) is older than the installed 1.2.3"),
        ("tool-7.16.3", "8.0.0", "7.16.3", "Upgrade to the newest 7.17.x first"),
        ("tool-7.17.1", "8.0.0", "7.17.1", ""),
        ("tool-8.0.0", "10.0.0", "8.0.0", "no rolling upgrade to major version 10"),
    ],
)
def test_version_of_an_archive_from_its_link(playbook, tmp_path, linked, wanted, installed, problem):
    link = tmp_path / "tool"
    if linked:
        (tmp_path / linked).mkdir()
        link.symlink_to(tmp_path / linked)
    args = {
        "shared_version_wanted": wanted,
        "shared_version_variable": "tool_version",
        "shared_version_link": str(link),
        "shared_version_prefix": "tool-",
        "shared_version_upgrade_from": {8: "7.17", 9: "8.19"},
    }
    res = playbook(VERSION, DEBIAN12, args)
    if problem:
        assert res.rc != 0 and problem in res.out, res.out
    else:
        assert res.rc == 0 and f"installed=[{installed}]" in res.out, res.out


def test_version_of_a_package_from_dpkg(playbook):
    """This controller's own bash, and a package it does not have."""
    bash = subprocess.run(
        ["dpkg-query", "-W", "-f", "${Version}", "bash"], capture_output=True, text=True, check=True
    ).stdout
    args = {"shared_version_variable": "bash_version", "shared_version_name": "bash"}
    res = playbook(VERSION, DEBIAN12, {**args, "shared_version_wanted": bash.split("-")[0]})
    assert res.rc == 0 and f"installed=[{bash}]" in res.out, res.out
    res = playbook(VERSION, DEBIAN12, {**args, "shared_version_wanted": "1.0.0"})
    assert res.rc != 0 and f"bash_version (1.0.0) is older than the installed {bash}" in res.out, res.out
    missing = {**args, "shared_version_name": "wlcg-soc-no-such-package", "shared_version_wanted": "1.0.0"}
    res = playbook(VERSION, DEBIAN12, missing)
    assert res.rc == 0 and "installed=[]" in res.out, res.out


def test_version_of_a_package_from_rpm(playbook, tmp_path, monkeypatch):
    """EL: rpm's query, through a stand-in that answers as rpm does (VERSION only; rc 1 if missing)."""
    fake = tmp_path / "bin/rpm"
    fake.parent.mkdir()
    fake.write_text(
        '#!/bin/sh\n[ "$2 $3" = "--queryformat %{VERSION}" ] || exit 2\n'
        '[ "$4" = opensearch ] && { printf 2.19.3; exit 0; }\necho "package $4 is not installed"; exit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    args = {"shared_version_variable": "elasticsearch_version", "shared_version_name": "opensearch"}
    res = playbook(VERSION, ALMA9, {**args, "shared_version_wanted": "2.19.4"})
    assert res.rc == 0 and "installed=[2.19.3]" in res.out, res.out
    res = playbook(VERSION, ALMA9, {**args, "shared_version_wanted": "2.19.1"})
    assert res.rc != 0 and "elasticsearch_version (2.19.1) is older than the installed 2.19.3" in res.out, res.out
    res = playbook(VERSION, ALMA9, {**args, "shared_version_name": "kibana", "shared_version_wanted": "8.19.4"})
    assert res.rc == 0 and "installed=[]" in res.out, res.out


CERTIFICATES = """
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.shared
        tasks_from: certificates
"""


def site_certificate_args(tmp_path: Path) -> dict:
    """The certificates entry point's variables for site.crt, site.key and site-ca.crt in ``tmp_path``."""
    return {
        "shared_certificates_dir": str(tmp_path / "certs"),
        "shared_certificates_name": "node",
        "shared_certificates_group": "root",
        "shared_certificates_common_name": "unused",
        "shared_certificates_site_certificate": str(tmp_path / "site.crt"),
        "shared_certificates_site_key": str(tmp_path / "site.key"),
        "shared_certificates_site_ca": str(tmp_path / "site-ca.crt"),
    }


def test_site_certificates_are_installed_without_showing_the_key(playbook, tmp_path):
    key = "-----BEGIN PRIVATE KEY-----\nc2l0ZS1rZXktbWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n"
    files = {"site.crt": "CERT\n", "site.key": key, "site-ca.crt": "CA\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = site_certificate_args(tmp_path)
    res = playbook(CERTIFICATES, DEBIAN12, args, check=False)
    assert res.rc == 0, res.out
    certs = tmp_path / "certs"
    assert (certs / "node.key").read_text() == key and (certs / "node.key").stat().st_mode & 0o777 == 0o640
    assert (certs / "node.crt").read_text() == "CERT\n" and (certs / "ca.crt").read_text() == "CA\n"
    assert "c2l0ZS1rZXktbWF0ZXJpYWw" not in res.out, res.out


def test_keystore_holds_key_and_certificate_unlogged(playbook, tmp_path, monkeypatch):
    """A PEM key store (Kafka's): the key, then the certificate, in one file the service group
    reads; neither shown, even with --diff."""
    key = "-----BEGIN PRIVATE KEY-----\nc2l0ZS1rZXktbWF0ZXJpYWw=\n-----END PRIVATE KEY-----\n"
    cert = "-----BEGIN CERTIFICATE-----\nY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
    for name, text in {"site.crt": cert, "site.key": key, "site-ca.crt": "CA\n"}.items():
        (tmp_path / name).write_text(text)
    args = site_certificate_args(tmp_path) | {"shared_certificates_keystore": True}
    monkeypatch.setenv("ANSIBLE_DIFF_ALWAYS", "1")
    res = playbook(CERTIFICATES, DEBIAN12, args, check=False)
    assert res.rc == 0, res.out
    store = tmp_path / "certs/node-keystore.pem"
    assert store.read_text() == key + cert and store.stat().st_mode & 0o777 == 0o640
    assert "c2l0ZS1rZXktbWF0ZXJpYWw" not in res.out, res.out
    again = playbook(CERTIFICATES, DEBIAN12, args, check=False)
    assert again.rc == 0 and "changed=0" in again.out, again.out


@pytest.mark.parametrize("replaced", [False, True], ids=["new", "replaced"])
def test_site_key_stays_out_of_diff(playbook, tmp_path, monkeypatch, replaced):
    """--diff shows a copied file's content: the site's key (new, or replacing another) stays out."""
    body = "c2l0ZS1rZXktbWF0ZXJpYWwtZm9yLWRpZmY"
    key = f"-----BEGIN PRIVATE KEY-----\n{body}=\n-----END PRIVATE KEY-----\n"
    old = "-----BEGIN PRIVATE KEY-----\nb2xkLWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    for name, text in {"site.crt": "CERT\n", "site.key": key, "site-ca.crt": "CA\n"}.items():
        (tmp_path / name).write_text(text)
    if replaced:
        (tmp_path / "certs").mkdir()
        (tmp_path / "certs/node.key").write_text(old)
    args = site_certificate_args(tmp_path)
    monkeypatch.setenv("ANSIBLE_DIFF_ALWAYS", "1")
    res = playbook(CERTIFICATES, DEBIAN12, args, check=False)
    assert res.rc == 0, res.out
    assert (tmp_path / "certs/node.key").read_text() == key
    # The diff is on: the certificate's task would show one without diff: false.
    assert "TASK [wlcg.soc.shared : Install the site's private key]" in res.out, res.out
    for secret in (body, "PRIVATE KEY", "b2xkLWtleS1tYXRlcmlhbA"):
        assert secret not in res.out, res.out


def test_certificates_from_the_site_ca(playbook, tmp_path):
    args = {
        "shared_certificates_dir": str(tmp_path / "certs"),
        "shared_certificates_name": "kibana",
        "shared_certificates_group": "root",
        "shared_certificates_common_name": "soc-kibana01",
        "shared_certificates_dns": ["soc-kibana01", "soc-kibana01.example.org"],
        "shared_certificates_ips": ["192.0.2.30"],
        "pki_dir": str(tmp_path / "pki"),
        "pki_ca_passphrase": "a-long-ca-passphrase-0123",
        "pki_install_dependencies": False,
    }
    res = playbook(CERTIFICATES, DEBIAN12, args, check=False)
    assert res.rc == 0, res.out
    certs = tmp_path / "certs"
    assert (certs / "ca.crt").read_text() == (tmp_path / "pki/ca.crt").read_text()
    assert (certs / "kibana.key").stat().st_mode & 0o777 == 0o640
    text = subprocess.run(
        ["openssl", "x509", "-in", certs / "kibana.crt", "-noout", "-subject", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "soc-kibana01" in text and "DNS:soc-kibana01.example.org" in text and "IP Address:192.0.2.30" in text

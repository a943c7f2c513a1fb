"""The workshop's exercise end to end on this scenario's hosts, with the same playbook `make
scenario` plays on the lab (tests/lab/scenario.yml): an event with a fresh address and domain
published on the central MISP double (ls-alert) with wlcg.soc.misp_event, the MISP sync (ls-pipe)
run at once, flows to the address exported by softflowd into nfacctd on ls-sensor (Kafka,
Logstash with its memcached lookups), a DNS query for the domain on a capture link of the
Zeek double there (intel.log, Filebeat, Kafka, Logstash); both alerts in alerts-default and in
the SMTP server's mailbox. The playbook fails on a path without its alert or mail; its times are
printed with the test's results.

Last of the scenario's tests (by name): its DNS query and flows come from ls-sensor, whose
documents test_logstash.py counts."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_workshop_scenario_alerts_and_mails_on_both_paths(capsys):
    playbook = shutil.which("ansible-playbook")
    assert playbook, "ansible-playbook is on the path (the dev venv)"
    env = dict(os.environ, ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [playbook, str(ROOT / "tests/lab/scenario.yml"), "-i", os.environ["MOLECULE_INVENTORY_FILE"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = run.stdout[run.stdout.rfind("TASK [Show them]") :] if "TASK [Show them]" in run.stdout else ""
    with capsys.disabled():
        print("\n" + report)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert report.count("in alerts-*:") == 2 and report.count("mailed:") == 2, report

"""The tests every role's input checks get, written once: good input passes the checks on
both families, every other good case passes, an unsupported platform is refused before the
first change, each bad input is refused before the first change with a message naming the
variable (and without a secret in the output), and the families' vars files define the
same keys (test_layout.py checks every role's defaults against its argument spec).

A role's test module calls ``input_check_tests(...)`` and puts what it returns (the
``checks`` fixture and the ``test_*`` functions) in its namespace, where pytest finds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from conftest import ROOT, UNSUPPORTED, assert_platform_refused, checks_play, unsupported_platforms


def input_check_tests(
    role: str,
    site: dict,
    facts: dict[str, dict],
    other_good: dict[str, dict],
    bad_input: list[tuple[dict, str]],
    first_change: str,
    secret: str | None = None,
) -> dict[str, Callable[..., Any]]:
    """``facts``: the supported platforms' facts by id (the first is the one the other cases
    use); ``bad_input``: (variables over ``site``, text the failure must contain)."""
    role_dir = ROOT / "roles" / role
    apply = f"""
- hosts: localhost
  gather_facts: true
  tasks:
    - ansible.builtin.include_role:
        name: wlcg.soc.{role}
"""
    validate = checks_play(role)
    first = next(iter(facts.values()))

    @pytest.fixture(scope="module")
    def checks(playbook_cases):
        """Every case, in two ansible-playbook runs (one host per case): the checks alone, and
        the role, which stops at its checks."""
        good = [(f, site) for f in facts.values()] + [(first, dict(site, **x)) for x in other_good.values()]
        refused = [(dict(first, **platform), site) for platform in UNSUPPORTED.values()]
        refused += [(first, dict(site, **extra)) for extra, _needle in bad_input]
        return {validate: playbook_cases(validate, good), apply: playbook_cases(apply, refused)}

    @pytest.mark.parametrize("platform_facts", list(facts.values()), ids=list(facts))
    def test_good_input_passes_checks(checks, platform_facts):
        res = checks[validate].get(platform_facts, site)
        assert res.rc == 0, res.out

    @pytest.mark.parametrize("extra", list(other_good.values()), ids=list(other_good))
    def test_other_good_input_passes_checks(checks, extra):
        res = checks[validate].get(first, dict(site, **extra))
        assert res.rc == 0, res.out

    @unsupported_platforms
    def test_unsupported_family_fails_first(checks, platform):
        platform_facts = dict(first, **platform)
        assert_platform_refused(checks[apply].get(platform_facts, site), role, platform_facts, first_change)

    @pytest.mark.parametrize(("extra", "needle"), bad_input)
    def test_bad_input_names_the_variable(checks, extra, needle):
        res = checks[apply].get(first, dict(site, **extra))
        assert res.rc != 0, res.out
        assert needle in res.out.replace("\n", " ") or needle in res.out, res.out
        assert first_change not in res.out, res.out
        assert secret is None or secret not in res.out

    def test_family_vars_define_the_same_keys():
        debian = yaml.safe_load((role_dir / "vars/Debian.yml").read_text())
        redhat = yaml.safe_load((role_dir / "vars/RedHat.yml").read_text())
        assert debian.keys() == redhat.keys()

    return {
        "checks": checks,
        "test_good_input_passes_checks": test_good_input_passes_checks,
        "test_other_good_input_passes_checks": test_other_good_input_passes_checks,
        "test_unsupported_family_fails_first": test_unsupported_family_fails_first,
        "test_bad_input_names_the_variable": test_bad_input_names_the_variable,
        "test_family_vars_define_the_same_keys": test_family_vars_define_the_same_keys,
    }

"""Every rule in the registry is documented in docs/rules.md, and nothing else is."""

import re

from conftest import ROOT
from convlint.analyzers import rules as R


def test_each_rule_has_a_section_with_why_example_and_fix():
    text = (ROOT / "docs" / "rules.md").read_text()
    documented = set(re.findall(r"^## (CL\d{3})", text, re.M))
    assert documented == set(R.RULES), documented ^ set(R.RULES)
    for code, rule in R.RULES.items():
        body = text.split(f"## {code} {rule.name}\n", 1)
        assert len(body) == 2, f"{code}: heading must read '## {code} {rule.name}'"
        section = body[1].split("\n## ", 1)[0]
        for part in ("**Why**", "**Example**", "**Fix**"):
            assert part in section, f"{code} lacks {part}"
        assert f"Severity: {rule.severity}" in section and f"stage: {rule.stage}" in section


def test_rule_docs_link_anchors_match_headings():
    for rule in R.RULES.values():
        assert rule.docs.endswith(f"#{rule.code.lower()}-{rule.name}")

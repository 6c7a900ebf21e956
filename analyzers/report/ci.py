"""CI renderers of a ``CheckReport``: GitHub workflow annotations, JUnit XML and SARIF 2.1.0.

They only format. Every finding keeps its rule code, severity, message and location; where a
finding is about a model rather than a script line, it is attached to the model file. A finding
in a notebook points at the line of the ``.ipynb`` file that stores its source line (that is
what GitHub and code-scanning viewers show), with the cell and the line in the cell beside it.
"""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

from convlint import __version__
from convlint.analyzers import rules as R

LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _items(report):
    """(sub-report dict, finding dict, file, line) for every finding."""
    for r in report.to_dict()["reports"]:
        subs = [r] + list(r.get("conversions", []))
        for sub in subs:
            default = sub.get("script") or (sub.get("target") or {}).get("path")
            for f in sub["findings"]:
                loc = f.get("location") or {}
                yield sub, f, loc.get("file") or default, loc.get("line")


def _label(r: dict) -> str:
    if r.get("script"):
        return r["script"]
    return f"{(r.get('source') or {}).get('path')} -> {(r.get('target') or {}).get('path')}"


# --- GitHub ----------------------------------------------------------------------------------
def _esc(s: str, prop: bool = False) -> str:
    s = str(s).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return s.replace(":", "%3A").replace(",", "%2C") if prop else s


def to_github(report) -> str:
    out = []
    for _, f, file, line in _items(report):
        kind = {"error": "error", "warning": "warning", "info": "notice"}[f["severity"]]
        props = [f"file={_esc(file, True)}"] if file else []
        loc = f.get("location") or {}
        msg = f["message"]
        if loc.get("cell") is not None:
            msg = f"cell {loc['cell'] + 1}, line {loc.get('cell_line')}: {msg}"
            if loc.get("notebook_line"):
                props.append(f"line={loc['notebook_line']}")
                if loc.get("notebook_end_line"):
                    props.append(f"endLine={loc['notebook_end_line']}")
        elif line:
            props.append(f"line={line}")
            if loc.get("column") is not None:
                props.append(f"col={loc['column'] + 1}")
            if loc.get("end_line"):
                props.append(f"endLine={loc['end_line']}")
        rule = f["rule"]
        title = rule + " " + R.RULES[rule].name if rule in R.RULES else rule
        props.append(f"title={_esc(title, True)}")
        out.append(f"::{kind} {','.join(props)}::{_esc(msg)}")
    return "\n".join(out)


# --- JUnit -----------------------------------------------------------------------------------
def to_junit(report) -> str:
    d = report.to_dict()
    tests = str(len(d["reports"]))
    suite = ET.Element("testsuite", name="convlint", tests=tests)
    failures = errors = 0
    for r in d["reports"]:
        kind = r["kind"]
        case = ET.SubElement(suite, "testcase", classname=f"convlint.{kind}", name=_label(r))
        subs = [r] + list(r.get("conversions", []))
        errs = [f for s in subs for f in s["findings"] if f["severity"] == "error"]
        if r["verdict"] == "error":
            errors += 1
            e = ET.SubElement(
                case, "error", message=errs[0]["message"][:500] if errs else "could not analyse"
            )
            e.text = "\n".join(f"{f['rule']}: {f['message']}" for f in errs)
        elif errs:
            failures += 1
            e = ET.SubElement(
                case,
                "failure",
                message=f"{len(errs)} error finding(s): {errs[0]['rule']}",
                type=errs[0]["rule"],
            )
            e.text = "\n".join(
                f"{f['rule']} line {(f.get('location') or {}).get('line')}: {f['message']}"
                for f in errs
            )
        others = [f for s in subs for f in s["findings"] if f["severity"] != "error"]
        if others:
            ET.SubElement(case, "system-out").text = "\n".join(
                f"{f['rule']} ({f['severity']}): {f['message']}" for f in others
            )
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    root = ET.Element("testsuites", name="convlint", tests=tests, failures=str(failures),
                      errors=str(errors))
    root.append(suite)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


# --- SARIF 2.1.0 -----------------------------------------------------------------------------
def to_sarif(report) -> str:
    used = sorted({f["rule"] for _, f, _, _ in _items(report)} & set(R.RULES))
    index = {c: i for i, c in enumerate(used)}
    rules = [{"id": c, "name": R.RULES[c].name, "shortDescription": {"text": R.RULES[c].summary},
              "helpUri": R.RULES[c].docs,
              "defaultConfiguration": {"level": LEVEL[R.RULES[c].severity]}} for c in used]
    results = []
    for _, f, file, line in _items(report):
        loc = f.get("location") or {}
        res = {
            "ruleId": f["rule"],
            "level": LEVEL[f["severity"]],
            "message": {"text": f["message"]},
        }
        if f["rule"] in index:
            res["ruleIndex"] = index[f["rule"]]
        if file:
            phys = {"artifactLocation": {"uri": _uri(file)}}
            if loc.get("cell") is not None:
                start = loc.get("notebook_line")
                if start:  # the stored line; its columns are the JSON's, not the cell's
                    phys["region"] = {"startLine": start,
                                      "endLine": loc.get("notebook_end_line") or start}
            elif line:
                region = {"startLine": line, "startColumn": (loc.get("column") or 0) + 1}
                if loc.get("end_line"):
                    region["endLine"] = loc["end_line"]
                    if loc.get("end_column") is not None:
                        region["endColumn"] = loc["end_column"] + 1
                phys["region"] = region
            res["locations"] = [{"physicalLocation": phys}]
        props = {k: v for k, v in (("layer", f.get("layer")), ("stage", f.get("stage")),
                                   ("source_node", loc.get("source_node")),
                                   ("target_node", loc.get("target_node"))) if v}
        if loc.get("cell") is not None:
            props.update({k: loc[k] for k in ("cell", "cell_line", "cell_end_line")
                          if loc.get(k) is not None})
            props["cell_column"] = (loc.get("column") or 0) + 1
        if props:
            res["properties"] = props
        rep = f.get("repair") or {}
        # a notebook's edits are ranges in a cell, not in the stored JSON: no SARIF fix for them
        edits = [e for e in rep.get("edits") or ()
                 if not str(e.get("file") or file).endswith(".ipynb")]
        if edits:
            changes: dict = {}
            for e in edits:
                changes.setdefault(e.get("file") or file, []).append(
                    {
                        "deletedRegion": {
                            "startLine": e["start"]["line"],
                            "startColumn": e["start"]["column"] + 1,
                            "endLine": e["end"]["line"],
                            "endColumn": e["end"]["column"] + 1,
                        },
                        "insertedContent": {"text": e["new_text"]},
                    }
                )
            res["fixes"] = [
                {
                    "description": {"text": rep["description"]},
                    "artifactChanges": [
                        {"artifactLocation": {"uri": _uri(u)}, "replacements": reps}
                        for u, reps in changes.items()
                    ],
                }
            ]
        results.append(res)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "convlint",
                        "version": __version__,
                        "informationUri": R.DOCS_URL.split("/blob/")[0],
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2)


def _uri(path: str) -> str:
    from pathlib import PurePath

    p = PurePath(path)
    return p.as_posix() if not p.is_absolute() else "file://" + p.as_posix()

"""The JUnit XML report for CI systems that display test results.

Owns: one `testcase` per artifact (suite `artifacts`) and per trust check (suite `checks`);
a `failure` with the reason for each that does not pass, an `error` when the run is
inconclusive; counts on every `testsuite` and on `testsuites`. Strings are made XML-safe
(characters XML 1.0 forbids become `\\xNN`), then escaped by ElementTree.
Does not own: verdicts (see `reprover.model`) or the shared sentences (`facts`).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from reprover.model import ArtifactResult, CheckResult, Report, Verdict, artifact_passes
from reprover.render import facts
from reprover.render.safe import suspicious_note, visible

MAX_REGION_LINES = 50

_INVALID_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str, *, multiline: bool = True) -> str:
    """`text` made visible (`reprover.render.safe.visible`), then free of what XML 1.0 forbids.

    Names (`multiline=False`) show even a newline as `\\n`; ElementTree escapes the rest.
    """
    text = visible(text, keep_newlines=multiline)
    return _INVALID_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render(report: Report) -> bytes:
    """Render the report as JUnit XML (UTF-8, with an XML declaration)."""
    root = ET.Element("testsuites", name=xml_safe(f"reprover {report.command}"))
    suites = []
    if report.artifacts:
        suites.append(_suite("artifacts", [_artifact_case(a, report) for a in report.artifacts]))
    if report.checks:
        suites.append(_suite("checks", [_check_case(c) for c in report.checks]))
    if report.verdict is Verdict.INCONCLUSIVE or report.inconclusive_reason is not None:
        case = ET.Element("testcase", classname="reprover.run", name="verification")
        error = ET.SubElement(
            case,
            "error",
            type="inconclusive",
            message=xml_safe(facts.verdict_sentence(report, visible), multiline=False),
        )
        if report.log_tail:
            error.text = xml_safe(report.log_tail)
        suites.append(_suite("run", [case]))
    _count(root, suites)
    root.extend(suites)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def _suite(name: str, cases: list[ET.Element]) -> ET.Element:
    suite = ET.Element("testsuite", name=name)
    _count(suite, cases)
    suite.extend(cases)
    return suite


def _count(parent: ET.Element, children: list[ET.Element]) -> None:
    def total(attr: str, tag: str) -> int:
        if parent.tag == "testsuites":
            return sum(int(child.get(attr, "0")) for child in children)
        return sum(1 for child in children if child.find(tag) is not None)

    parent.set("tests", str(sum(int(c.get("tests", "1")) for c in children)))
    parent.set("failures", str(total("failures", "failure")))
    parent.set("errors", str(total("errors", "error")))
    parent.set("skipped", "0")


def _artifact_case(artifact: ArtifactResult, report: Report) -> ET.Element:
    case = ET.Element(
        "testcase", classname="reprover.artifacts", name=xml_safe(artifact.path, multiline=False)
    )
    reason = _reason(artifact)
    flag = suspicious_note(artifact.path)
    if flag is not None:
        reason += f"; {flag}"
    if artifact_passes(artifact, strict=report.strict):
        out = ET.SubElement(case, "system-out")
        out.text = xml_safe(f"{artifact.verdict.value}: {reason}")
        return case
    failure = ET.SubElement(
        case,
        "failure",
        type=artifact.verdict.value,
        message=xml_safe(f"{artifact.verdict.value}: {reason}", multiline=False),
    )
    failure.text = xml_safe(_ledger_text(artifact, facts.sides(report)))
    return case


def _reason(artifact: ArtifactResult) -> str:
    diffs = artifact.differences
    blocked = sum(1 for d in diffs if not d.allowed)
    reasons = {
        "identical": "released and rebuilt bytes are identical",
        "missing": "released but not produced by the rebuild",
        "unexpected": "produced by the rebuild but not released",
        "unlisted": "released but not listed in [[artifact]] nor in [release] ignore",
    }
    if artifact.verdict.value in reasons:
        return reasons[artifact.verdict.value]
    text = (
        f"{facts.plural(len(diffs), 'differing run')} "
        f"({facts.plural(sum(d.length for d in diffs), 'byte')}), {blocked} not allowed"
    )
    size = facts.sizes_note(artifact)
    return f"{text}; {size}" if size else text


def _ledger_text(artifact: ArtifactResult, sides: tuple[str, str]) -> str:
    lines = []
    for label, digest in ((sides[0], artifact.released), (sides[1], artifact.rebuilt)):
        if digest is not None:
            lines.append(f"{label}: sha256:{digest.sha256} ({facts.plural(digest.size, 'byte')})")
    lines += [f"note: {visible(note)}" for note in artifact.notes]
    groups = facts.group_by_region(artifact.differences)
    for group in groups[:MAX_REGION_LINES]:
        allowed = (
            "allowed" if group.all_allowed else f"{group.runs - group.allowed_runs} not allowed"
        )
        lines.append(
            f"{visible(group.region)} [{', '.join(group.kinds)}]: "
            f"{facts.plural(group.runs, 'run')}, {facts.plural(group.bytes, 'byte')}, "
            f"{allowed}, bytes 0x{group.first_offset:x}-0x{group.last_byte:x}"
        )
    hidden = groups[MAX_REGION_LINES:]
    if hidden:
        lines.append(
            f"... {len(hidden)} more regions ({sum(g.runs for g in hidden)} runs, "
            f"{sum(g.bytes for g in hidden)} bytes); the JSON report lists every run"
        )
    return "\n".join(lines)


def _check_case(check: CheckResult) -> ET.Element:
    case = ET.Element(
        "testcase", classname="reprover.checks", name=xml_safe(check.name, multiline=False)
    )
    if check.passed:
        out = ET.SubElement(case, "system-out")
        out.text = xml_safe("\n".join(visible(x) for x in (check.detail, *check.findings)))
        return case
    failure = ET.SubElement(
        case, "failure", type="check", message=xml_safe(check.detail, multiline=False)
    )
    failure.text = xml_safe("\n".join(visible(f) for f in check.findings) or visible(check.detail))
    return case

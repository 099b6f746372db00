"""Linting an in-toto layout: the mistakes that make a layout weaker than it looks.

Owns: the list of findings for one parsed layout (steps without functionaries, thresholds
above the number of keys or below one, rules naming unknown steps, rule lists that allow
everything or lack a final `DISALLOW *`, expiry missing, past or years away, key entries whose
keyid is neither the current nor the legacy securesystemslib keyid of their material, the
same public key (SubjectPublicKeyInfo DER) listed twice, keyid prefixes that collide,
inspections and sublayouts), each with a severity and a stable code.
Does not own: parsing the file (`reprover.intoto.metadata`) or deciding what is fatal during
verification (`reprover.intoto.verify` picks the codes it refuses).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from in_toto.models.layout import Layout

from reprover.intoto.metadata import (
    EXPIRES_FORMAT,
    Loaded,
    accepted_keyids,
    key_material,
    signature_ok,
)

ERROR = "error"
WARNING = "warning"
YEARS_AWAY = timedelta(days=3 * 366)
EVERYTHING = frozenset({"*", "**", "*/*", "**/*"})


@dataclass(frozen=True)
class Finding:
    """One lint finding: `code` is stable (tests and verification select by it)."""

    severity: str
    code: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message} [{self.code}]"


def lint_layout(
    loaded: Loaded, owner_keys: list[dict[str, Any]] | None = None, *, now: datetime
) -> list[Finding]:
    """Every finding for a parsed layout file.

    Args:
        loaded: the parsed layout file.
        owner_keys: public key dictionaries that must each have signed the layout, if known.
        now: the current time (timezone-aware).

    Raises:
        TypeError: `loaded` is a link, not a layout.
    """
    layout = loaded.payload
    if not isinstance(layout, Layout):
        raise TypeError(f"{loaded.path} holds a link, not a layout")
    findings = _signatures(loaded, owner_keys or [])
    findings += _expiry(loaded.raw_payload, now)
    findings += _keys(layout)
    findings += _steps(layout)
    for inspection in layout.inspect:
        findings.append(
            Finding(
                WARNING,
                "inspection",
                f"inspection {inspection.name}",
                f"runs {inspection.run!r} on the verifier's machine; reprover runs it in a "
                "throw-away folder holding only the released files",
            )
        )
    return findings


def _signatures(loaded: Loaded, owner_keys: list[dict[str, Any]]) -> list[Finding]:
    if not loaded.signature_keyids:
        return [Finding(ERROR, "unsigned", "layout", "carries no signature")]
    return [
        Finding(ERROR, "layout-signature", "layout", f"no valid signature by key {key['keyid']}")
        for key in owner_keys
        if not signature_ok(loaded, key)
    ]


def _expiry(raw: dict[str, Any], now: datetime) -> list[Finding]:
    value = raw.get("expires")
    if not value:
        return [
            Finding(
                ERROR,
                "expiry-missing",
                "expires",
                "missing: in-toto silently treats it as one month from every verification",
            )
        ]
    try:
        expires = datetime.strptime(str(value), EXPIRES_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        return [
            Finding(ERROR, "expiry-format", "expires", f"{value!r} is not YYYY-MM-DDTHH:MM:SSZ")
        ]
    if expires <= now:
        return [Finding(ERROR, "expired", "expires", f"{value} (UTC) is in the past")]
    if expires - now > YEARS_AWAY:
        return [
            Finding(
                WARNING,
                "expiry-far",
                "expires",
                f"{value} is more than 3 years away: a leaked key stays useful that long",
            )
        ]
    return []


def _keys(layout: Layout) -> list[Finding]:
    findings = []
    seen: dict[bytes, str] = {}
    for keyid, key in layout.keys.items():
        where = f"key {keyid}"
        material = key_material(key) if isinstance(key, dict) else None
        if not isinstance(key, dict) or material is None:
            findings.append(Finding(ERROR, "key-malformed", where, "is not a usable public key"))
            continue
        accepted = accepted_keyids(key)
        if keyid not in accepted or key.get("keyid") != keyid:
            findings.append(
                Finding(
                    ERROR,
                    "keyid-mismatch",
                    where,
                    f"its material hashes to keyid {' or '.join(accepted) or '(none)'}",
                )
            )
        if material in seen:
            findings.append(
                Finding(
                    ERROR,
                    "duplicate-key",
                    where,
                    f"is the same public key as {seen[material]}: one holder would count twice",
                )
            )
        seen.setdefault(material, keyid)
    return findings


def _steps(layout: Layout) -> list[Finding]:
    findings = []
    names = {s.name for s in layout.steps} | {i.name for i in layout.inspect}
    for step in layout.steps:
        where = f"step {step.name}"
        if not step.pubkeys:
            findings.append(Finding(ERROR, "no-functionary", where, "names no functionary key"))
        for keyid in step.pubkeys:
            if keyid not in layout.keys:
                findings.append(
                    Finding(ERROR, "unknown-key", where, f"key {keyid} is not in the layout's keys")
                )
        if step.threshold < 1:
            findings.append(
                Finding(ERROR, "threshold-low", where, f"threshold {step.threshold} is below 1")
            )
        elif step.threshold > len(set(step.pubkeys)):
            findings.append(
                Finding(
                    ERROR,
                    "threshold-high",
                    where,
                    f"threshold {step.threshold} exceeds its {len(set(step.pubkeys))} key(s)",
                )
            )
        prefixes: dict[str, list[str]] = defaultdict(list)
        for keyid in step.pubkeys:
            prefixes[keyid[:8]].append(keyid)
        for prefix, keyids in prefixes.items():
            if len(keyids) > 1:
                findings.append(
                    Finding(
                        ERROR,
                        "keyid-prefix",
                        where,
                        f"keys {keyids} share the link file prefix {prefix}",
                    )
                )
    for item in [*layout.steps, *layout.inspect]:
        for kind, rules in (
            ("materials", item.expected_materials),
            ("products", item.expected_products),
        ):
            findings += _rules(f"{item.name} {kind}", rules, names)
    return findings


def _rules(where: str, rules: list[list[str]], names: set[str]) -> list[Finding]:
    findings = []
    if not rules or [r.upper() if i == 0 else r for i, r in enumerate(rules[-1])] != [
        "DISALLOW",
        "*",
    ]:
        findings.append(
            Finding(ERROR, "no-final-disallow", where, "rule list does not end with DISALLOW *")
        )
    for rule in rules:
        text = " ".join(rule)
        kind = rule[0].upper() if rule else ""
        if kind == "ALLOW" and len(rule) > 1 and rule[1] in EVERYTHING:
            findings.append(Finding(ERROR, "allow-all", where, f"{text!r} allows everything"))
        if kind == "MATCH" and "FROM" in rule and rule[-1] not in names:
            findings.append(
                Finding(ERROR, "unknown-step", where, f"{text!r} names unknown step {rule[-1]!r}")
            )
    return findings

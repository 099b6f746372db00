"""Policy: the closed vocabulary of `[policy] allow` rules and applying them to a ledger.

Owns: the rule names a manifest may list (`RULES`, each documented with the regions it covers),
validating those names (`validate_rules`), marking each `Difference` that falls entirely in a
region an enabled rule covers as `allowed` with that `rule` (`apply`), the artifact verdict that
follows (`judge`: `equivalent` when every difference is allowed), and the policy's digest for
the report (`policy_digest`). The default policy allows nothing.
Does not own: labelling bytes with regions (`reprover.compare`), reading manifests.

Rules match region names exactly as the ledger writes them (`pe.coff.TimeDateStamp`,
`macho[arm64].LC_UUID.uuid`, ...). A difference found by the structural comparison keeps its
region's name, so a rule allows it only when its region is one the rule covers: a section that
grew is never allowed by a timestamp rule.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from reprover.errors import InputError
from reprover.model import ArtifactResult, ArtifactVerdict, Difference, Policy

_MACHO = r"macho(?:\[[^\]]+\])?"


@dataclass(frozen=True)
class Rule:
    """One allow rule: what it means and the region names it covers (full-match patterns)."""

    name: str
    description: str
    patterns: tuple[str, ...]

    def covers(self, region: str) -> bool:
        """Whether `region` is one this rule may allow."""
        return any(re.fullmatch(p, region) for p in self.patterns)


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "pe.timestamp",
            "PE time stamps: COFF header TimeDateStamp and the TimeDateStamp of debug-directory "
            "entries, the export directory, the resource directory and the load config",
            (r"pe\.coff\.TimeDateStamp", r"pe\.debug\[\d+:[^\]]+\]\.TimeDateStamp",
             r"pe\.(?:export|resource|load_config)\.TimeDateStamp"),
        ),
        Rule("pe.checksum", "PE optional-header CheckSum", (r"pe\.optional_header\.CheckSum",)),
        Rule(
            "pe.debug.codeview",
            "PE CodeView (RSDS) debug record: PDB GUID, age and PDB path",
            (r"pe\.debug\.codeview\.(?:guid|age|path)",),
        ),
        Rule("pe.debug.repro", "PE REPRO debug record (the /Brepro content hash)",
             (r"pe\.debug\.repro",)),
        Rule("pe.rich", "PE Rich header (linker and compiler build numbers)",
             (r"pe\.rich_header",)),
        Rule("elf.build-id", "ELF GNU build-id note descriptor",
             (r"elf\.note\.gnu\.build-id\.desc",)),
        Rule("macho.uuid", "Mach-O LC_UUID value", (_MACHO + r"\.LC_UUID\.uuid",)),
        Rule(
            "macho.oso",
            "Mach-O N_OSO debug-map entries: object file modification times and object paths",
            (_MACHO + r"\.symtab\.N_OSO\.mtime", _MACHO + r"\.strtab\.N_OSO\.path"),
        ),
        Rule(
            "signature",
            "Code signatures: the PE certificate table, the signer's zero padding and the "
            "security data-directory entry; the Mach-O LC_CODE_SIGNATURE data",
            (r"pe\.certificate_table", r"pe\.certificate_padding",
             r"pe\.data_directory\[SECURITY\]", _MACHO + r"\.code_signature(?:\..+)?"),
        ),
        Rule(
            "debug-info",
            "DWARF and other debug sections: ELF and PE .debug_* sections, Mach-O __DWARF, PE "
            "debug payloads other than CodeView",
            (r"(?:elf|pe)\.section\[\.z?debug_[^\]]*\]", _MACHO + r"\.section\[__DWARF,[^\]]+\]",
             r"pe\.debug\[\d+:[^\]]+\]\.payload"),
        ),
    )
}  # fmt: skip


def validate_rules(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Check `[policy] allow` names against the vocabulary; return them as a tuple.

    Raises:
        InputError: a name is not a string or not a known rule; the message names it and lists
            the valid ones.
    """
    for name in names:
        if not isinstance(name, str) or name not in RULES:
            raise InputError(
                f"unknown policy rule {name!r} in [policy] allow",
                hint="valid rules: " + ", ".join(sorted(RULES)),
            )
    return tuple(names)


def apply(differences: tuple[Difference, ...], policy: Policy) -> tuple[Difference, ...]:
    """Mark each difference an enabled rule covers as allowed, naming the rule.

    Raises:
        InputError: the policy names an unknown rule.
    """
    enabled = [RULES[name] for name in validate_rules(policy.allow)]
    out = []
    for diff in differences:
        rule = next((r for r in enabled if r.covers(diff.region)), None)
        if rule is None:
            out.append(replace(diff, allowed=False, rule=None))
        else:
            out.append(replace(diff, allowed=True, rule=rule.name))
    return tuple(out)


def judge(result: ArtifactResult, policy: Policy) -> ArtifactResult:
    """Apply `policy` to a `different` result: `equivalent` when every difference is allowed.

    Results with another verdict, or without any difference listed, are returned unchanged
    (a difference nobody could label is never allowed). The `signature` rule is never honoured
    here: a region label cannot tell a valid signature from data hidden in the certificate
    area (CVE-2013-3900); only the signature proofs in `reprover.compare` grant it.

    Raises:
        InputError: the policy names an unknown rule.
    """
    if result.verdict is not ArtifactVerdict.DIFFERENT or not result.differences:
        return result
    validate_rules(policy.allow)
    without_signature = replace(policy, allow=tuple(r for r in policy.allow if r != "signature"))
    marked = apply(result.differences, without_signature)
    verdict = ArtifactVerdict.EQUIVALENT if all(d.allowed for d in marked) else result.verdict
    return replace(result, verdict=verdict, differences=marked)


def policy_digest(policy: Policy) -> str:
    """Return the SHA-256 (hex) of the policy's canonical JSON (rules sorted, signer paths)."""
    canonical = {
        "allow": sorted(set(policy.allow)),
        "trusted_signers": sorted(str(p) for p in policy.trusted_signers),
    }
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def describe() -> list[tuple[str, str]]:
    """Return (rule, description) for every rule, sorted, for `--help` texts and docs."""
    return [(name, RULES[name].description) for name in sorted(RULES)]

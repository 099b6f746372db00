"""Policy: the closed vocabulary of `[policy] allow` rules and applying them to a ledger.

Owns: the rule names a manifest may list (`RULES`, each documented with the regions it covers),
validating those names (`validate_rules`), marking each `Difference` that falls entirely in a
region an enabled rule covers as `allowed` with that `rule` (`apply`), the artifact verdict that
follows (`judge`: `equivalent` when every difference is allowed), and the policy's digest for
the report (`policy_digest`). The default policy allows nothing.
Does not own: labelling bytes with regions (`reprover.compare`), reading manifests.

A rule allows a difference only when both its region name (exactly as the ledger writes it:
`pe.coff.TimeDateStamp`, `macho[arm64].LC_UUID.uuid`, ...) and its kind are ones the rule
covers, and never when its kind is `code`: the ledger classifies every byte the loader maps
executable as `code`, whatever its region is called, and the region maps grant a rule's region
only after checking its structure (a build-id note outside executable bytes, a debug entry's
data inside one non-executable section and overlapping nothing, an LC_UUID inside the load
commands). A result with an `overlapping-structure` finding is never `equivalent`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, replace

from reprover.errors import InputError
from reprover.model import ArtifactResult, ArtifactVerdict, Difference, Kind, Policy

_MACHO = r"macho(?:\[[^\]]+\])?"
_ARCHIVE = r"(?:zip|tar|ar|cpio|cab|ole|gzip|xz|bz2|zstd)"
# a member field: names inside [] are escaped (no brackets), so the field is what follows
_MEMBER = _ARCHIVE + r"\.(?:entry|member|file|stream)\[[^\[\]]*\]\."
OVERLAPPING = "overlapping-structure:"  # the notes the region maps' findings start with
K = Kind


@dataclass(frozen=True)
class Rule:
    """One allow rule: what it means, the region names (full-match patterns) and kinds it covers."""

    name: str
    description: str
    patterns: tuple[str, ...]
    kinds: frozenset[Kind]

    def covers(self, region: str, kind: Kind | None = None) -> bool:
        """Whether a difference in `region` of `kind` is one this rule may allow.

        `kind=None` asks about the region name alone. `code` is never covered.
        """
        if kind is Kind.CODE or (kind is not None and kind not in self.kinds):
            return False
        return any(re.fullmatch(p, region) for p in self.patterns)


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "pe.timestamp",
            "the 4-byte TimeDateStamp of the COFF header, and of each debug-directory entry and "
            "of the export, resource and load-config directories when that table lies inside "
            "one section",
            (r"pe\.coff\.TimeDateStamp", r"pe\.debug\[\d+:[^\]]+\]\.TimeDateStamp",
             r"pe\.(?:export|resource|load_config)\.TimeDateStamp"),
            frozenset({K.TIMESTAMP}),
        ),
        Rule("pe.checksum", "the 4-byte CheckSum of the optional header",
             (r"pe\.optional_header\.CheckSum",), frozenset({K.CHECKSUM})),
        Rule(
            "pe.debug.codeview",
            "of a CodeView (RSDS) debug record whose data lies inside one non-executable section "
            "and overlaps no data directory or other debug data: its 16-byte GUID, 4-byte age "
            "and PDB path (the rest of the record)",
            (r"pe\.debug\.codeview\.(?:guid|age|path)",),
            frozenset({K.PDB_GUID, K.DEBUG_PATH}),
        ),
        Rule("pe.debug.repro",
             "the data of a REPRO (type 16) debug entry (the /Brepro hash), under the same "
             "conditions as pe.debug.codeview",
             (r"pe\.debug\.repro",), frozenset({K.BUILD_ID})),
        Rule("pe.rich", "the Rich header (DanS ... Rich + key) inside the DOS stub",
             (r"pe\.rich_header",), frozenset({K.METADATA})),
        Rule("elf.build-id",
             "the descriptor of the one GNU build-id note (NT_GNU_BUILD_ID), in a note "
             "section (or PT_NOTE segment) that holds no executable byte",
             (r"elf\.note\.gnu\.build-id\.desc",), frozenset({K.BUILD_ID})),
        Rule("macho.uuid", "the 16-byte value of an LC_UUID command inside the load commands",
             (_MACHO + r"\.LC_UUID\.uuid",), frozenset({K.BUILD_ID})),
        Rule(
            "macho.oso",
            "of each N_OSO symbol: its n_value (the object file's modification time) inside "
            "the symbol table and its path string inside the string table",
            (_MACHO + r"\.symtab\.N_OSO\.mtime", _MACHO + r"\.strtab\.N_OSO\.path"),
            frozenset({K.TIMESTAMP, K.DEBUG_PATH}),
        ),
        Rule(
            "signature",
            "Code signatures: the PE certificate table, the signer's zero padding and the "
            "security data-directory entry; the Mach-O LC_CODE_SIGNATURE data",
            (r"pe\.certificate_table", r"pe\.certificate_padding",
             r"pe\.data_directory\[SECURITY\]", _MACHO + r"\.code_signature(?:\..+)?"),
            frozenset({K.SIGNATURE}),
        ),
        Rule(
            "archive.mtime",
            "Archive timestamps: member times (ZIP DOS time and time extras, TAR mtime/atime/"
            "ctime and pax times, ar, cpio, OLE entries), the gzip header time, the MSI summary's "
            "created, saved and printed times. Only when every member's "
            "content is identical or itself allowed",
            (_MEMBER + r"(?:[\w.]+\.)?[amc]time", r"gzip\.header\.mtime",
             r"ole\.root\.[cm]time", r"msi\.summary\.(?:created|saved|printed)",
             r"rpm\.header\.(?:buildtime|filemtimes)"),
            frozenset({K.TIMESTAMP}),
        ),
        Rule(
            "archive.order",
            "Member order inside an archive (same members, stored in another order)",
            (_ARCHIVE + r"\.order", r"ole\.layout"),
            frozenset({K.METADATA}),
        ),
        Rule(
            "archive.owner",
            "Member owners: uid, gid, user and group names (TAR, pax, ar, cpio, ZIP Unix extra)",
            (_MEMBER + r"(?:[\w.]+\.)?(?:uid|gid|uname|gname|owner)",
             r"rpm\.header\.file(?:user|group)name\.owner"),
            frozenset({K.METADATA}),
        ),
        Rule(
            "archive.mode",
            "Member permission bits, except setuid, setgid, sticky, executable, file-type and "
            "higher bits' changes (named .mode.special, never allowed)",
            (_MEMBER + r"(?:[\w.]+\.)?mode", r"rpm\.header\.filemodes\.mode"),
            frozenset({K.METADATA}),
        ),
        Rule(
            "archive.compression",
            "Compressed bytes of the same content: ZIP method, flags, version needed, sizes and "
            "data, the gzip XFL and OS bytes, the compressed stream of gzip, xz, bzip2, zstd",
            (_MEMBER + r"compression(?:\.\w+)?",
             r"(?:gzip|xz|bz2|zstd|cab)\.(?:header\.)?compression\.\w+"),
            frozenset({K.METADATA}),
        ),
        Rule(
            "debug-info",
            "whole debug sections that are not executable and overlap no other structure: "
            "ELF .debug_*/.zdebug_* sections and the .gnu_debuglink and .gnu_debugaltlink "
            "sections (the separate debug file's name and checksum) that the loader does not "
            "map (no SHF_ALLOC, outside every PT_LOAD), PE .debug_* sections, Mach-O __DWARF "
            "sections; and the data of PE debug entries other than CodeView and REPRO, under "
            "the same conditions as pe.debug.codeview",
            (r"(?:elf|pe)\.section\[\.z?debug_[^\]]*\]", r"elf\.section\[\.gnu_debug(?:alt)?link\]",
             _MACHO + r"\.section\[__DWARF,[^\]]+\]",
             r"pe\.debug\[\d+:[^\]]+\]\.payload"),
            frozenset({K.DEBUG_INFO}),
        ),
    )
}  # fmt: skip


def validate_rules(
    names: list[str] | tuple[str, ...], *, where: str = "[policy] allow"
) -> tuple[str, ...]:
    """Check rule names against the vocabulary; return them as a tuple.

    `where` names the names' origin in the message (`[policy] allow`, `--allow`).

    Raises:
        InputError: a name is not a string or not a known rule; the message names it and lists
            the valid ones.
    """
    for name in names:
        if not isinstance(name, str) or name not in RULES:
            raise InputError(
                f"unknown policy rule {name!r} in {where}",
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
        rule = next((r for r in enabled if r.covers(diff.region, diff.kind)), None)
        if rule is None:
            out.append(replace(diff, allowed=False, rule=None))
        else:
            out.append(replace(diff, allowed=True, rule=rule.name))
    return tuple(out)


def judge(result: ArtifactResult, policy: Policy) -> ArtifactResult:
    """Apply `policy` to a `different` result: `equivalent` when every difference is allowed.

    Results with another verdict, or without any difference listed, are returned unchanged
    (a difference nobody could label is never allowed). A result with an
    `overlapping-structure` finding in its notes stays `different`. The `signature` rule is
    never honoured here: a region label cannot tell a valid signature from data hidden in the
    certificate area (CVE-2013-3900); only the signature proofs in `reprover.compare` grant it.

    Raises:
        InputError: the policy names an unknown rule.
    """
    if result.verdict is not ArtifactVerdict.DIFFERENT or not result.differences:
        return result
    validate_rules(policy.allow)
    without_signature = replace(policy, allow=tuple(r for r in policy.allow if r != "signature"))
    marked = apply(result.differences, without_signature)
    overlapping = any(note.startswith(OVERLAPPING) for note in result.notes)
    allowed = all(d.allowed for d in marked) and not overlapping
    verdict = ArtifactVerdict.EQUIVALENT if allowed else result.verdict
    return replace(result, verdict=verdict, differences=marked)


def policy_digest(policy: Policy) -> str:
    """Return the SHA-256 (hex) of the policy's canonical JSON (rules sorted, signer paths)."""
    canonical: dict[str, object] = {
        "allow": sorted(set(policy.allow)),
        "trusted_signers": sorted(str(p) for p in policy.trusted_signers),
    }
    pins = (policy.macho_identifier, policy.macho_flags, policy.entitlements)
    if any(p is not None for p in pins):  # Mach-O pins, only when set (older digests unchanged)
        canonical["macho"] = dict(zip(("identifier", "flags", "entitlements"), pins, strict=True))
    data = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()


def describe() -> list[tuple[str, str]]:
    """Return (rule, description) for every rule, sorted, for `--help` texts and docs."""
    return [(name, RULES[name].description) for name in sorted(RULES)]

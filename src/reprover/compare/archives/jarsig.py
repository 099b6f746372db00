"""Prove that a signed JAR is exactly its unsigned rebuild plus a jarsigner signature.

Owns: which member names are signature files (`signing_related`, Java's rule, case-blind),
and `prove_jar_signature_only`. The driver calls it only when every other difference is
allowed, so every other member is already the rebuild's, byte for byte, content and metadata.
The proof adds:

- names: the manifest is `META-INF/MANIFEST.MF`, every signature file `META-INF/<NAME>.SF`
  with exactly one block `META-INF/<NAME>.RSA` or `.EC`, spelled in upper case as jarsigner
  writes them (Java reads these names without case, so any other spelling or two names equal
  but for case is ambiguous and refused); the rebuild holds no signature file;
- the manifest's main section holds the rebuild's attributes, in order, with their values
  (jarsigner keeps them, but may rewrite line endings and wrapping: both strictly parsed, so
  equal attributes are one meaning; when it does not keep them, as when the rebuild's lacks
  `Manifest-Version`, something was lost). With no manifest in the rebuild it is exactly
  jarsigner's `Manifest-Version: 1.0` and `Created-By`;
- every per-entry section of the rebuild's manifest is kept with the same attributes, digests
  aside; a new section holds only digests, at least one; every member but directories (empty,
  named `x/`) and signature files has a section whose digests are those of the *rebuilt*
  member's content and of the *released* one (what Java checks: a member that differs by an
  allowed rule, such as an inner archive's times, cannot be proven signed); no section
  digests anything else;
- each `.SF` (main section: `Signature-Version: 1.0`, `Created-By`, digests, nothing else)
  digests the whole released manifest and its main section, and has one section per manifest
  section whose digest is that section's bytes;
- each block is a detached PKCS#7 over its `.SF` (`signatures.pkcs7.verify_detached`, an
  RFC 3161 timestamp from `jarsigner -tsa` included) whose key type matches its extension,
  chaining to pinned certificates when there are any;
- what jarsigner's ZIP writer changes (`jarzip.check_container`): members under `META-INF/`
  first (keeping their order), the ZIP comment dropped, and on each entry the UTF-8 name
  flag (only for ASCII names, which it does not change) and the data-descriptor flag; the
  entries of the manifest and the signature files carry no comment, no extra field of any
  kind (times and owners too) and no flag but UTF-8's, as jarsigner writes them (their
  version and file attributes, 8 bytes each, are not checked).

Digests: SHA-256, SHA-384 and SHA-512 prove; SHA-1 and MD5 are checked when present but never
suffice (a section or signer with only those refuses the proof); any other is refused.
Does not own: the manifest grammar (`jarmf`), the ZIP container's rules and which names are
signature files (`jarzip`), CMS and trust (`signatures`), the verdict.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from pathlib import Path

from reprover.compare.archives.jarmf import Manifest, Section, parse_manifest
from reprover.compare.archives.jarzip import MANIFEST, META, check_container, signing_related
from reprover.compare.archives.limits import LimitHit
from reprover.compare.archives.listing import Listing, MalformedArchive, Member
from reprover.compare.signatures import cms
from reprover.compare.signatures.pkcs7 import SignerDetails, verify_detached
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError

STRONG = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
WEAK = {"SHA1": "sha1", "SHA-1": "sha1", "MD5": "md5"}
SF_NAME = re.compile(r"META-INF/([A-Z0-9_-]+)\.SF")
BLOCK_NAME = re.compile(r"META-INF/([A-Z0-9_-]+)\.(RSA|EC|DSA)")
KEY_TYPES = {"RSA": "rsa", "EC": "ec"}  # a block's extension -> its key type (`cms.SIGNATURES`)
SF_MAIN = ("Signature-Version", "Created-By")
MAX_SIGNING_FILE = 64 << 20


def prove_jar_signature_only(
    files: tuple[Path, Path], listings: tuple[Listing, Listing], trusted: tuple[Path, ...]
) -> tuple[SignerDetails, ...]:
    """Prove released = rebuilt + jarsigner signatures; return every signer.

    `files` and `listings` are (released, rebuilt), the listings from `zipfmt.read_zip`.

    Raises:
        VerificationError: any part of the proof fails; the message says which.
        InputError: a pinned certificate cannot be read.
    """
    del files  # the listings stream every member
    anchors = load_trusted(trusted)
    released, rebuilt = listings
    rel = {m.name: m for m in released.members}
    reb = {m.name: m for m in rebuilt.members}
    pairs = _names(rel, reb)
    manifest = parse_manifest(_read(rel[MANIFEST]), "the released manifest")
    base = parse_manifest(_read(reb[MANIFEST]), "the rebuilt manifest") if MANIFEST in reb else None
    _main(manifest, base)
    _entries(manifest, base, rel, reb)
    check_container(released, rebuilt, [MANIFEST, *(n for pair in pairs for n in pair)])
    signers = []
    for sf_name, block_name in pairs:
        sf_bytes = _read(rel[sf_name])
        _signature_file(parse_manifest(sf_bytes, sf_name), manifest, sf_name)
        signer = verify_detached(_read(rel[block_name]), sf_bytes, trusted=anchors,
                                 label=block_name)  # fmt: skip
        kind = block_name.rsplit(".", 1)[1]
        if _key_type(signer.signature_algorithm) != KEY_TYPES[kind]:
            raise VerificationError(
                f"{block_name}: signed with {signer.signature_algorithm}, not an {kind} key"
            )
        if signer.digest_algorithm not in STRONG.values():
            raise VerificationError(
                f"{block_name}: the signer hashes with {signer.digest_algorithm}; SHA-1 and "
                "MD5 cannot prove a signature"
            )
        signers.append(signer)
    return tuple(signers)


def _key_type(name: str) -> str | None:
    """The key type ("rsa", "ec") of a signature algorithm as `SignerDetails` names it."""
    oid = next((o for o, n in cms.SIGNATURE_NAMES.items() if n == name), name)
    return cms.SIGNATURES.get(oid, (None, None))[0]


def _names(rel: dict[str, Member], reb: dict[str, Member]) -> list[tuple[str, str]]:
    """Check the signature files' names; return (`.SF`, block) pairs in name order.

    Raises:
        VerificationError: a misspelt or ambiguous name, an unpaired file, or a signed rebuild.
    """
    _case_clash(rel)
    signed = [n for n in reb if signing_related(n) and n != MANIFEST]
    if signed:
        raise VerificationError(
            f"the rebuilt JAR already holds signature file {signed[0]!r}; compare an unsigned "
            "rebuild"
        )
    if MANIFEST not in rel:
        raise VerificationError(f"the released JAR has no {MANIFEST}")
    sfs: dict[str, str] = {}
    blocks: dict[str, str] = {}
    for name in sorted(n for n in rel if signing_related(n) and n != MANIFEST):
        sf, block = SF_NAME.fullmatch(name), BLOCK_NAME.fullmatch(name)
        if sf is not None:
            sfs[sf.group(1)] = name
        elif block is not None and block.group(2) == "DSA":
            raise VerificationError(f"{name}: DSA signature blocks are not supported")
        elif block is not None:
            if block.group(1) in blocks:
                raise VerificationError(f"{name}: a second signature block for one .SF")
            blocks[block.group(1)] = name
        else:
            raise VerificationError(
                f"{name!r} is a signature file to Java but not spelled META-INF/<NAME>.SF, "
                ".RSA or .EC in upper case as jarsigner writes it; refused as ambiguous"
            )
    if not sfs:
        raise VerificationError("the released JAR has no signature file (META-INF/*.SF)")
    if sfs.keys() != blocks.keys():
        lone = sorted({*sfs.values(), *blocks.values()} - {
            *(sfs[k] for k in sfs.keys() & blocks.keys()),
            *(blocks[k] for k in sfs.keys() & blocks.keys()),
        })  # fmt: skip
        raise VerificationError(f"signature files without their pair: {', '.join(lone)}")
    return [(sfs[k], blocks[k]) for k in sorted(sfs)]


def _case_clash(rel: dict[str, Member]) -> None:
    """Refuse two names under META-INF/ equal but for case.

    Raises:
        VerificationError: there are such names.
    """
    upper: dict[str, str] = {}
    for name in rel:
        if name.upper().startswith(META):
            other = upper.setdefault(name.upper(), name)
            if other != name:
                raise VerificationError(
                    f"members {other!r} and {name!r} differ only by case; Java's signature "
                    "files are read without case, so which one counts is ambiguous"
                )


def _read(member: Member) -> bytes:
    """A signature file's content, bounded.

    Raises:
        VerificationError: unreadable or larger than `MAX_SIGNING_FILE`.
    """
    out = bytearray()
    try:
        for block in member.opener() if member.opener is not None else ():
            out += block
            if len(out) > MAX_SIGNING_FILE:
                raise VerificationError(f"{member.name}: larger than {MAX_SIGNING_FILE} bytes")
    except (MalformedArchive, LimitHit) as exc:
        raise VerificationError(f"{member.name}: cannot be read: {exc}") from exc
    return bytes(out)


def _main(manifest: Manifest, base: Manifest | None) -> None:
    """The main section has the rebuild's attributes, or jarsigner's own when it has none.

    Raises:
        VerificationError: anything else.
    """
    if base is None:
        keys = [k for k, _ in manifest.main.attributes]
        if keys != ["Manifest-Version", "Created-By"] or manifest.main.get(keys[0]) != "1.0":
            raise VerificationError(
                "the rebuild has no manifest, and the released one's main section is not "
                "jarsigner's own (Manifest-Version: 1.0, then Created-By): it adds "
                + ", ".join(repr(k) for k in keys)
            )
        return
    if manifest.main.attributes != base.main.attributes:
        mine, theirs = dict(manifest.main.attributes), dict(base.main.attributes)
        changed = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
        what = ", ".join(changed) if changed else "the order of the attributes"
        raise VerificationError(
            f"the released manifest's main section is not the rebuild's: {what} differ; "
            "jarsigner keeps the main section's attributes as they are"
        )


def _digests(attributes: tuple[tuple[str, str], ...], suffix: str, what: str) -> dict[str, bytes]:
    """The digests named `<ALG><suffix>` among `attributes`, by hashlib name.

    Raises:
        VerificationError: an unknown algorithm or spelling, one algorithm twice, bad base64,
            or only SHA-1/MD5 digests.
    """
    out: dict[str, bytes] = {}
    for key, value in attributes:
        if not key.lower().endswith(suffix.lower()):
            continue
        alg = key[: -len(suffix)]
        name = STRONG.get(alg) or WEAK.get(alg)
        if name is None or not key.endswith(suffix):
            raise VerificationError(f"{what}: digest attribute {key!r} is not one this checks")
        if name in out:
            raise VerificationError(f"{what}: two {name} digests")
        try:
            out[name] = base64.b64decode(value.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise VerificationError(f"{what}: {key} is not base64") from exc
    if out and not any(n in STRONG.values() for n in out):
        raise VerificationError(
            f"{what}: only {'/'.join(sorted(out))} digests; SHA-1 and MD5 cannot prove content, "
            "so the proof is refused (sign with SHA-256 or stronger)"
        )
    return out


def _match(digests: dict[str, bytes], blocks: list[bytes] | Member, what: str) -> None:
    """Every digest equals the hash of `blocks` (bytes, or a member's content streamed).

    Raises:
        VerificationError: one does not.
    """
    hashers = {n: hashlib.new(n) for n in digests}
    try:
        stream = blocks if isinstance(blocks, list) else (blocks.opener or (lambda: iter(())))()
        for block in stream:
            for h in hashers.values():
                h.update(block)
    except (MalformedArchive, LimitHit) as exc:
        raise VerificationError(f"{what}: cannot be read: {exc}") from exc
    for name, h in hashers.items():
        if h.digest() != digests[name]:
            raise VerificationError(f"{what}: the {name} digest does not match")


def _empty(member: Member) -> bool:
    try:
        return all(not block for block in (member.opener or (lambda: iter(())))())
    except (MalformedArchive, LimitHit) as exc:
        raise VerificationError(f"{member.name}: cannot be read: {exc}") from exc


def _entries(
    manifest: Manifest, base: Manifest | None, rel: dict[str, Member], reb: dict[str, Member]
) -> None:
    """Per-entry sections: the rebuild's kept, every member covered by rebuilt digests.

    Raises:
        VerificationError: a section dropped, changed or digesting no member, or a member
            the manifest does not cover.
    """
    kept = base.sections if base is not None else {}
    for name in kept:
        if name not in manifest.sections:
            raise VerificationError(f"the released manifest drops the rebuild's section {name!r}")
    for name, section in manifest.sections.items():
        _section(section, kept.get(name), rel, reb)
    for name, member in rel.items():
        if signing_related(name) or (name.endswith("/") and _empty(member)):
            continue
        found = manifest.sections.get(name)
        if found is None or not _digests(found.attributes[1:], "-Digest", name):
            raise VerificationError(
                f"member {name!r} is not covered by the manifest: unsigned content in a signed JAR"
            )


def _section(
    section: Section, base: Section | None, rel: dict[str, Member], reb: dict[str, Member]
) -> None:
    """One per-entry section of the released manifest (`base`: the rebuild's of that name).

    Raises:
        VerificationError: attributes other than the rebuild's, a new section without a
            digest, digests of no signed member, or digests the members do not match.
    """
    name = section.name
    what = f"manifest section {name!r}"
    if any(k.lower() == "magic" for k, _ in section.attributes):
        raise VerificationError(f"{what}: the Magic attribute is not supported")
    digests = _digests(section.attributes[1:], "-Digest", what)
    others = _plain(section)
    if others != (_plain(base) if base is not None else ()):
        raise VerificationError(
            f"{what}: attributes other than digests are not the rebuild's ("
            + ", ".join(k for k, _ in others) + ")"
        )  # fmt: skip
    if base is None and not digests:
        raise VerificationError(
            f"{what}: not the rebuild's and holds no digest (jarsigner writes no such "
            "section): bytes no signing explains"
        )
    if name not in rel or signing_related(name):
        if digests:
            raise VerificationError(f"{what}: digests {name!r}, which is no signed member")
        return
    if name not in reb:
        raise VerificationError(f"{what}: {name!r} is not in the rebuild")
    if digests:
        _match(digests, reb[name], f"{what} (against the rebuilt member's content)")
        _match(digests, rel[name], f"{what} (against the released member's content, "
                                   "which Java checks)")  # fmt: skip


def _plain(section: Section) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in section.attributes[1:] if not k.lower().endswith("-digest"))


def _signature_file(sf: Manifest, manifest: Manifest, what: str) -> None:
    """A `.SF` digests the released manifest, its main section and each of its sections.

    Raises:
        VerificationError: an unknown attribute, a missing or stale digest, or sections that
            are not the manifest's.
    """
    main = sf.main.attributes
    if sf.main.get("Signature-Version") != "1.0":
        raise VerificationError(f"{what}: no 'Signature-Version: 1.0'")
    whole = _digests(main, "-Digest-Manifest", what)
    head = _digests(main, "-Digest-Manifest-Main-Attributes", what)
    suffixes = ("-digest-manifest", "-digest-manifest-main-attributes")
    unknown = [k for k, _ in main if k not in SF_MAIN and not k.lower().endswith(suffixes)]
    if unknown:
        raise VerificationError(f"{what}: main attribute {unknown[0]!r} is not one this checks")
    if not whole:
        raise VerificationError(f"{what}: no digest of the whole manifest (*-Digest-Manifest)")
    _match(whole, [manifest.raw], f"{what}: the manifest digest (stale: the manifest changed)")
    if head:
        _match(head, [manifest.main.raw], f"{what}: the manifest main-section digest")
    missing = sorted(manifest.sections.keys() - sf.sections.keys())
    extra = sorted(sf.sections.keys() - manifest.sections.keys())
    if missing or extra:
        raise VerificationError(
            f"{what}: its sections are not the manifest's (missing {missing}, extra {extra})"
        )
    for name, section in sf.sections.items():
        digests = _digests(section.attributes[1:], "-Digest", f"{what}, section {name!r}")
        if not digests or len(digests) != len(section.attributes) - 1:
            raise VerificationError(f"{what}, section {name!r}: holds other than digests")
        _match(digests, [manifest.sections[name].raw], f"{what}, section {name!r}")

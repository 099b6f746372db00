"""`reprover sign-check UNSIGNED SIGNED`: prove signing changed nothing but the signature.

The release engineer's check before publishing: SIGNED must be exactly UNSIGNED plus a valid
code signature (Authenticode for PE; for Mach-O, thin or universal, a code signature whose
CodeDirectories cover UNSIGNED's pages and whose assertions are UNSIGNED's own or pinned, see
`reprover.compare.signatures.macho`). The ledger is the one `diff` shows for the same pair.
Archives and installers (MSI, CAB, ZIP/JAR, RPM, TAR, .deb) are compared member by member
with only the `signature` rule allowed: proven when the archive's own signature is proven, or
every member that differs is (an MSI inside a ZIP, a signed DLL inside a CAB).
Exit 0 proven, 1 not proven (the report and stderr say why), 2 bad input (none of those formats,
formats that differ, pins that do not apply), 3 inconclusive.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from reprover.cli.common import (
    add_report_options,
    add_trusted_option,
    check_report_outputs,
    emit_report,
    err,
    trusted_pins,
)
from reprover.compare import compare_artifact, compare_files
from reprover.compare.archives.formats import HEAD, sniff
from reprover.compare.signatures.authenticode import prove_signature_only as prove_pe
from reprover.compare.signatures.macho import NoSignerError, is_macho, prove_macho_signature_only
from reprover.compare.signatures.macho_assertions import MachOPins
from reprover.digest import hash_file
from reprover.errors import InputError, VerificationError
from reprover.fsutil import regular_file
from reprover.model import ArtifactVerdict, CheckResult, Policy, Report

SIGNATURE_RULE = "signature"
# an archive prover's outcome, or why it did not run
PROOF_NOTES = ("released = ", "signature-only refused", "signature-only not proven")


def register(sub: Any) -> None:
    """Add the `sign-check` subcommand."""
    parser = sub.add_parser(
        "sign-check",
        help="prove that SIGNED is UNSIGNED plus a valid code signature and nothing else",
        description=(
            "Prove that signing changed nothing but the signature: the signed file must be the "
            "unsigned file plus a well-formed, valid Authenticode signature (PE) or code "
            "signature (Mach-O, thin or universal), with no other byte changed or added. "
            "Archives and installers (MSI, CAB, ZIP/JAR, RPM, TAR, .deb) are compared member by "
            "member: proven when their own signature is, or when every member that differs is "
            "proven signature-only, or both (an MSI or CAB signed over DLLs signed before "
            "packing). A signed MSI must be laid out as osslsigncode writes it; for one signed "
            "by another tool (signtool) use `reprover diff --allow signature --allow "
            "archive.order`. Exit 0 only when proven."
        ),
    )
    parser.add_argument("unsigned", type=Path, help="the file before signing (or a rebuild)")
    parser.add_argument("signed", type=Path, help="the signed file to publish")
    add_trusted_option(parser)
    parser.add_argument(
        "--macho-identifier",
        metavar="ID",
        help="Mach-O: accept this CodeDirectory identifier when it is not UNSIGNED's own",
    )
    parser.add_argument(
        "--macho-flags",
        type=_flags,
        metavar="FLAGS",
        help="Mach-O: accept these CodeDirectory flags (e.g. 0x10000 for the hardened runtime)",
    )
    parser.add_argument(
        "--entitlements",
        type=Path,
        metavar="PLIST",
        help="Mach-O: accept these entitlements (an XML plist, as committed in the source)",
    )
    add_report_options(parser)
    parser.set_defaults(run=run)


def _flags(value: str) -> int:
    try:
        return int(value, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer such as 0x10000: {value!r}") from exc


def _kind(path: Path) -> str:
    """`pe`, `macho`, or `archive:FORMAT` (every format `reprover diff` opens).

    Raises:
        InputError: the file cannot be read, or is none of those.
    """
    regular_file(path, what="input")  # a FIFO or device would block the read
    try:
        with path.open("rb") as f:
            head = f.read(HEAD)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if head[:2] == b"MZ":
        return "pe"
    if is_macho(head[:8]):
        return "macho"
    fmt = sniff(head, path.name)
    if fmt is not None:
        return f"archive:{fmt}"
    what = "an ELF file" if head[:4] == b"\x7fELF" else "neither PE, Mach-O nor an archive"
    raise InputError(
        f"{path}: sign-check proves PE (Authenticode) and Mach-O code signatures, and "
        f"archives and installers holding them; this is {what}",
        hint="ELF files carry no embedded code signature; compare them with `reprover diff`",
    )


def _pins(args: argparse.Namespace, kind: str) -> MachOPins:
    given = [args.macho_identifier, args.macho_flags, args.entitlements]
    if kind != "macho":
        if any(v is not None for v in given):
            raise InputError("--macho-identifier, --macho-flags and --entitlements are for Mach-O")
        return MachOPins()
    entitlements = None
    if args.entitlements is not None:
        try:
            entitlements = args.entitlements.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {args.entitlements}: {exc.strerror or exc}") from exc
    return MachOPins(args.macho_identifier, args.macho_flags, entitlements)


def _archive(unsigned: Path, signed: Path, trusted: tuple[Path, ...]) -> Report:
    """An archive or installer, compared member by member with only `signature` allowed.

    Proven when the outer verdict is `signature-only`: the archive's own signature (MSI,
    CAB, JAR, RPM) is proven, or every member that differs is itself proven signature-only
    and nothing else differs.
    """
    policy = Policy(allow=(SIGNATURE_RULE,), trusted_signers=trusted)
    digests = (hash_file(signed), hash_file(unsigned))
    results = compare_artifact(signed.name, signed, unsigned, policy, digests=digests)
    outer = results[0]
    passed = outer.verdict is ArtifactVerdict.SIGNATURE_ONLY
    found = [n for n in outer.notes if n.startswith(PROOF_NOTES)]
    if found:
        detail = found[0]
    elif passed:
        signed_members = [r.path for r in results[1:] if r.verdict is outer.verdict]
        detail = "every member that differs is proven signature-only: " + ", ".join(signed_members)
    else:
        detail = "the archive differs from its rebuild outside a proven signature"
    findings = list(outer.notes)
    for member in results[1:]:  # each layer's verdict, with its own proof or refusal
        proof = [n for n in member.notes if n.startswith(PROOF_NOTES)]
        why = f": {proof[0]}" if proof else ""
        findings.append(f"{member.path}: {member.verdict.value}{why}")
    check = CheckResult("archive-signatures", passed, detail, tuple(findings))
    inputs = [str(unsigned), str(signed)]
    for pin in trusted:
        inputs += ["--trusted", str(pin)]
    return Report(command="sign-check", artifacts=results, checks=(check,), inputs=tuple(inputs))


def run(args: argparse.Namespace) -> int:
    """Run the proof, label every differing byte as `diff` would, and emit the report.

    Raises:
        InputError: unreadable files or pins, a format other than PE or Mach-O, formats that
            differ, pins that do not apply (Mach-O pins for a PE; --trusted for an ad-hoc
            Mach-O signature, which names no signer).
    """
    unsigned, signed = args.unsigned, args.signed
    kind = _kind(signed)
    if _kind(unsigned) != kind:
        raise InputError(f"{unsigned} and {signed} are not the same format")
    pins = _pins(args, kind)
    trusted = trusted_pins(args)
    extra = [p for p in (args.entitlements,) if p is not None]
    check_report_outputs(args, [unsigned, signed, *trusted, *extra])
    if kind.startswith("archive:"):
        return emit_report(_archive(unsigned, signed, trusted), args)
    name = "macho-code-signature" if kind == "macho" else "authenticode"
    try:
        if kind == "macho":
            proof: Any = prove_macho_signature_only(signed, unsigned, trusted=trusted, pins=pins)
        else:
            proof = prove_pe(signed, unsigned, trusted=trusted)
        check = CheckResult(name, True, proof.summary(), proof.findings())
    except NoSignerError as exc:
        raise InputError(
            f"--trusted does not apply: {exc.message}",
            hint="drop --trusted for ad-hoc signatures (they prove integrity, not identity)",
        ) from exc
    except VerificationError as exc:
        check = CheckResult(name, False, exc.message)
        if not args.quiet:
            err(f"reprover: sign-check: {exc.diagnostics()}")
    digests = (hash_file(signed), hash_file(unsigned))
    artifact = compare_files(signed.name, signed, unsigned, Policy(), digests=digests)
    if check.passed:
        artifact = replace(
            artifact,
            verdict=ArtifactVerdict.SIGNATURE_ONLY,
            differences=tuple(
                replace(d, allowed=True, rule=SIGNATURE_RULE) for d in artifact.differences
            ),
        )
    elif artifact.verdict is not ArtifactVerdict.DIFFERENT:
        artifact = replace(artifact, verdict=ArtifactVerdict.DIFFERENT)
    inputs = [str(unsigned), str(signed)]
    for pin in trusted:
        inputs += ["--trusted", str(pin)]
    report = Report(
        command="sign-check", artifacts=(artifact,), checks=(check,), inputs=tuple(inputs)
    )
    return emit_report(report, args)

"""`reprover sign-check UNSIGNED SIGNED`: prove signing changed nothing but the signature.

The release engineer's check before publishing: SIGNED must be exactly UNSIGNED plus a valid
code signature (Authenticode for PE; for Mach-O, a code signature whose CodeDirectory page
hashes match UNSIGNED's pages, see `reprover.compare.signatures.macho` for what that proves).
Exit 0 proven, 1 not proven (the report and stderr say why), 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reprover.cli.common import add_report_options, emit_report, err
from reprover.compare.signatures.authenticode import as_differences, label_signature_regions
from reprover.compare.signatures.authenticode import prove_signature_only as prove_pe
from reprover.compare.signatures.macho import is_macho, prove_macho_signature_only
from reprover.digest import hash_file
from reprover.errors import InputError, VerificationError
from reprover.model import ArtifactResult, ArtifactVerdict, CheckResult, Difference, Report


def register(sub: Any) -> None:
    """Add the `sign-check` subcommand."""
    parser = sub.add_parser(
        "sign-check",
        help="prove that SIGNED is UNSIGNED plus a valid code signature and nothing else",
        description=(
            "Prove that signing changed nothing but the signature: the signed file must be the "
            "unsigned file plus a well-formed, valid Authenticode signature (PE) or code "
            "signature (Mach-O), with no other byte changed or added. Exit 0 only when proven."
        ),
    )
    parser.add_argument("unsigned", type=Path, help="the file before signing (or a rebuild)")
    parser.add_argument("signed", type=Path, help="the signed file to publish")
    parser.add_argument(
        "--trusted",
        action="append",
        type=Path,
        default=[],
        metavar="CERT.pem",
        help="pinned CA or signer certificate; the signer must chain to one (repeatable)",
    )
    add_report_options(parser)
    parser.set_defaults(run=run)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc


def run(args: argparse.Namespace) -> int:
    """Run the proof and emit the report.

    Raises:
        InputError: a file or a pinned certificate cannot be read.
    """
    unsigned, signed = args.unsigned, args.signed
    trusted = tuple(args.trusted)
    head = _head(signed)
    _head(unsigned)
    released, rebuilt = hash_file(signed), hash_file(unsigned)
    differences: tuple[Difference, ...] = ()
    try:
        if is_macho(head):
            _no_pins(trusted)
            macho = prove_macho_signature_only(signed, unsigned)
            name, detail, findings = "macho-code-signature", macho.summary(), macho.findings()
            differences = tuple(
                Difference(r.offset, r.length, r.region, r.kind, allowed=True, rule="signature")
                for r in macho.regions
            )
        else:
            proof = prove_pe(signed, unsigned, trusted=trusted)
            name, detail, findings = "authenticode", proof.summary(), proof.findings()
            differences = tuple(
                Difference(r.offset, r.length, r.region, r.kind, allowed=True, rule="signature")
                for r in proof.regions
            )
        verdict, passed = ArtifactVerdict.SIGNATURE_ONLY, True
    except VerificationError as exc:
        name = "macho-code-signature" if is_macho(head) else "authenticode"
        detail, findings = exc.message, ()
        verdict, passed = ArtifactVerdict.DIFFERENT, False
        differences = _labels(signed)
        if not args.quiet:
            err(f"reprover: sign-check: {exc.diagnostics()}")
    artifact = ArtifactResult(
        path=signed.name,
        verdict=verdict,
        released=released,
        rebuilt=rebuilt,
        differences=differences,
    )
    check = CheckResult(name=name, passed=passed, detail=detail, findings=findings)
    report = Report(command="sign-check", artifacts=(artifact,), checks=(check,))
    return emit_report(report, args)


def _no_pins(trusted: tuple[Path, ...]) -> None:
    if trusted:
        raise VerificationError(
            "--trusted applies to Authenticode only; a Mach-O ad-hoc signature names no signer "
            "to pin"
        )


def _labels(signed: Path) -> tuple[Difference, ...]:
    try:
        data = signed.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {signed}: {exc.strerror or exc}") from exc
    return as_differences(label_signature_regions(data))

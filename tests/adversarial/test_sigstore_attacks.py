"""Attacks on keyless attestations: real production bundles tampered with, one part at a time.

Each tampering must fail with the cryptographic reason in plain words. The mutation tests
switch one of sigstore's transparency-log checks off and show that the tamperings it guards
then verify: so if reprover ever stopped running that check (or sigstore did), the tampering
tests above would fail. The test double adds what real bundles cannot: a certificate that
expired before its entry was logged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from attest_support import report_for, statement_bytes
from reprover.attest import sigstore_sign, sigstore_verify
from reprover.errors import VerificationError
from sigstore_double import SigstoreDouble, make_token
from sigstore_real import BEACON, FIXTURES, TAMPERINGS, fixture, tampered

Cli = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def production() -> object:
    return sigstore_verify.load_trusted_root(None)


@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_tampered_production_bundle_fails_with_the_reason(name: str, production: object) -> None:
    reason = TAMPERINGS[name][1]
    with pytest.raises(VerificationError) as caught:
        sigstore_verify.verify_dsse_bundle(tampered(name), [BEACON], production)  # type: ignore[arg-type]
    assert reason in caught.value.message


@pytest.mark.parametrize("name", ["signed-entry-timestamp", "inclusion-proof-hash", "checkpoint"])
def test_tampered_bundle_through_the_cli_says_why_in_plain_words(
    name: str, tmp_path: Path, run_cli: Cli
) -> None:
    bundle = tmp_path / f"{name}.sigstore.json"
    bundle.write_bytes(tampered(name))
    artifact = tmp_path / "a.txt"
    artifact.write_bytes(b"a\n")
    code, out, err = run_cli(
        "verify-attestation", bundle, "--artifact", artifact,
        "--identity", BEACON.identity, "--issuer", BEACON.issuer,
    )  # fmt: skip
    assert code == 1
    assert TAMPERINGS[name][1] in err
    assert err.count(str(bundle)) == 1  # named once on stderr ...
    assert out.count(str(bundle)) == 1  # ... and once in the report
    assert "b'" not in err and 'b"' not in err  # no Python bytes reprs
    assert "validation error" not in err  # no pydantic dumps


# mutant name -> (what to switch off in sigstore, the tamperings that must then verify)
LOG_CHECK_MUTANTS = {
    "no log entry verification": (
        "sigstore.models.TransparencyLogEntry._verify",
        {n for n, (_, _, log_only) in TAMPERINGS.items() if log_only},
    ),
    "no signed entry timestamp": (
        "sigstore.models.TransparencyLogEntry._verify_set",
        {"signed-entry-timestamp", "log-index", "integrated-time"},
    ),
    "no checkpoint": ("sigstore.models.verify_checkpoint", {"checkpoint"}),
}


@pytest.mark.parametrize("mutant", sorted(LOG_CHECK_MUTANTS))
def test_each_log_check_is_what_stops_its_tamperings(
    mutant: str, production: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    target, guarded = LOG_CHECK_MUTANTS[mutant]
    monkeypatch.setattr(target, lambda *_args, **_kwargs: None)
    verified = set()
    for name in TAMPERINGS:
        try:
            sigstore_verify.verify_dsse_bundle(tampered(name), [BEACON], production)  # type: ignore[arg-type]
        except VerificationError:
            continue
        verified.add(name)
    assert verified == guarded


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("production-dsse-invalid-sig.sigstore.json", "DSSE signature does not verify"),
        ("production-dsse-mismatch-envelope.sigstore.json", "log entry"),
    ],
)
def test_conformance_suite_failures_fail(name: str, reason: str, production: object) -> None:
    with pytest.raises(VerificationError, match=reason):
        sigstore_verify.verify_dsse_bundle(fixture(name), [BEACON], production)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["mock-expired-certificate.sigstore.json", "mock-set-outside-validity.sigstore.json"]
)
def test_certificate_not_valid_when_logged_fails(name: str) -> None:
    root = sigstore_verify.load_trusted_root(FIXTURES / "mock-trusted_root.json")
    with pytest.raises(VerificationError, match="not valid when the entry was logged"):
        sigstore_verify.verify_dsse_bundle(fixture(name), [BEACON], root)


def test_staging_bundle_is_refused_by_the_production_root(tmp_path: Path, run_cli: Cli) -> None:
    for name in ("staging-dsse.sigstore.json", "staging-message.sigstore.json"):
        bundle = tmp_path / name
        bundle.write_bytes(fixture(name))
        code, _, err = run_cli(
            "verify-attestation", bundle, "--artifact", bundle,
            "--identity", BEACON.identity, "--issuer", BEACON.issuer,
        )  # fmt: skip
        assert code == 1
        assert "another sigstore instance" in err


@pytest.fixture
def double(monkeypatch: pytest.MonkeyPatch) -> Iterator[SigstoreDouble]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with SigstoreDouble("lab") as instance:
        yield instance


def test_certificate_expired_before_its_entry_was_logged(
    double: SigstoreDouble, tmp_path: Path, run_cli: Cli
) -> None:
    """A log that integrates the entry an hour after the 10-minute certificate expired."""
    artifact = tmp_path / "engine"
    artifact.write_bytes(b"engine\n")
    double.log_delay = 3600
    root, config = double.write(tmp_path)
    data = sigstore_sign.sign_bundle(
        statement_bytes(report_for(artifact)),
        make_token("alice@lab.example", "https://issuer.lab.example"),
        sigstore_sign.signing_context(config),
    )
    bundle = tmp_path / "late.sigstore.json"
    bundle.write_bytes(data)
    code, _, err = run_cli(
        "verify-attestation", bundle, "--artifact", artifact, "--trusted-root", root,
        "--identity", "alice@lab.example", "--issuer", "https://issuer.lab.example",
    )  # fmt: skip
    assert code == 1
    assert "signing certificate was not valid when the entry was logged" in err


def test_library_log_lines_are_escaped(capsys: pytest.CaptureFixture[str]) -> None:
    """in-toto and sigstore log messages quote hostile strings (a link's command, say)."""
    import logging

    from reprover.cli.common import quiet_libraries

    quiet_libraries(quiet=False, verbose=True)
    logging.getLogger("in_toto.verifylib").warning("Run command '%s'", "\x1b[2J\x1b]0;PASS\x07")
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "\\x1b[2J" in err

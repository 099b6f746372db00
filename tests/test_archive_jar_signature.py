"""A JAR signed by jarsigner against its unsigned rebuild: signature-only, every signer named."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from archive_support import FIXTURES, artifact, regions, report, write_zip
from jar_support import (
    ec_keystore,
    jar_tool,
    jarsign,
    jarsigner_verifies,
    jdk,
    keystore,
    local_tsa,
    write_jar,
)
from reprover.compare.archives.jarmf import parse_manifest
from reprover.compare.signatures.pkcs7 import verify_detached
from reprover.compare.signatures.trust import load_trusted
from reprover.errors import VerificationError

pytestmark = pytest.mark.skipif(not jdk(), reason="default-jdk-headless: .ci/apt-packages.txt")
CA = FIXTURES / "signature" / "ca.pem"
OTHER_CA = FIXTURES / "signature" / "other-ca.pem"
SIGNER = "CN=reprover test release signer"
LF_MANIFEST = (  # LF line ends and a package section: jarsigner rewrites both (CRLF, order)
    b"Manifest-Version: 1.0\nCreated-By: a tool writing LF\nMain-Class: app.Main\n\n"
    b"Name: app/\nSealed: true\n\n"
)


@pytest.fixture(scope="module")
def jars(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Unsigned rebuilds and their jarsigner-signed releases, each in its own folder."""
    root = tmp_path_factory.mktemp("jar")
    store, other = keystore(root), keystore(root, "other-leaf", "other-ca")
    out = {}
    cases = ("unsigned", "signed", "two", "bare-unsigned", "bare-signed", "ec", "sha1", "stamped",
             "jar-unsigned", "jar-signed", "lf-unsigned", "lf-signed")  # fmt: skip
    for case in cases:
        (root / case).mkdir()
        out[case] = root / case / "app.jar"
    write_jar(out["unsigned"])
    jarsign(out["unsigned"], out["signed"], store)
    jarsign(out["signed"], out["two"], other, sigfile="RELEASE")
    write_jar(out["bare-unsigned"], manifest=None)
    jarsign(out["bare-unsigned"], out["bare-signed"], store)
    jarsign(out["unsigned"], out["ec"], ec_keystore(root))
    jarsign(out["unsigned"], out["sha1"], store, digestalg="SHA-1")
    jarsign(jar_tool(root / "tool", out["jar-unsigned"]), out["jar-signed"], store)
    write_jar(out["lf-unsigned"], manifest=LF_MANIFEST)
    jarsign(out["lf-unsigned"], out["lf-signed"], store)
    with local_tsa(root / "tsa") as url:
        jarsign(out["unsigned"], out["stamped"], store, tsa=url)
    return out


@pytest.mark.slow
def test_signed_jar_is_signature_only_in_diff_and_sign_check(jars, run_cli) -> None:
    assert jarsigner_verifies(jars["signed"])  # the oracle agrees the signature is good
    code, rep = report(run_cli, "diff", jars["signed"], jars["unsigned"], "--allow", "signature")
    assert code == 0, rep
    outer = artifact(rep, "app.jar")
    assert outer["verdict"] == "signature-only"
    assert any("released = rebuilt + JAR signature" in n for n in outer["notes"])
    assert any(n.startswith("META-INF/SIGNER.RSA: subject") and SIGNER in n
               for n in outer["notes"])  # fmt: skip
    found = regions(outer)
    for name in ("META-INF/SIGNER.SF", "META-INF/SIGNER.RSA"):
        assert found[f"zip.entry[{name}]"]["rule"] == "signature"
    assert found["zip.entry[META-INF/MANIFEST.MF].data"]["rule"] == "signature"
    assert {d["rule"] for d in outer["differences"]} == {"signature"}
    # the signature's members are named in the outer differences, not reported on their own
    assert [a["path"] for a in rep["artifacts"]] == ["app.jar"]
    code, rep = report(run_cli, "sign-check", jars["unsigned"], jars["signed"], "--trusted", CA)
    assert code == 0, rep
    assert rep["checks"][0]["passed"]
    assert any(SIGNER in n for n in artifact(rep, "app.jar")["notes"])


@pytest.mark.slow
def test_jar_made_by_the_jdk_tools(jars, run_cli) -> None:
    """javac and jar, then jarsigner: META-INF/ and its service file move before the signature
    files' (`zip.order`, jarsigner's own reordering) and nothing else changes."""
    assert jarsigner_verifies(jars["jar-signed"])
    code, rep = report(run_cli, "sign-check", jars["jar-unsigned"], jars["jar-signed"],
                       "--trusted", CA)  # fmt: skip
    assert code == 0, rep
    outer = artifact(rep, "app.jar")
    assert outer["verdict"] == "signature-only"
    assert regions(outer)["zip.order"]["rule"] == "signature"


@pytest.mark.slow
def test_manifest_rewritten_by_jarsigner_keeps_its_meaning(jars, run_cli) -> None:
    """An LF manifest comes back CRLF, its package section moved after the new ones."""
    with zipfile.ZipFile(jars["lf-signed"]) as z:
        assert z.read("META-INF/MANIFEST.MF").startswith(b"Manifest-Version: 1.0\r\n")
    code, rep = report(run_cli, "diff", jars["lf-signed"], jars["lf-unsigned"],
                       "--allow", "signature")  # fmt: skip
    assert code == 0, rep
    assert artifact(rep, "app.jar")["verdict"] == "signature-only"


@pytest.mark.slow
def test_without_the_signature_rule_the_signature_is_a_difference(jars, run_cli) -> None:
    code, rep = report(run_cli, "diff", jars["signed"], jars["unsigned"])
    assert code == 1
    outer = artifact(rep, "app.jar")
    assert outer["verdict"] == "different"
    assert not regions(outer)["zip.entry[META-INF/SIGNER.SF]"]["allowed"]


@pytest.mark.slow
def test_signer_outside_the_pinned_trust_fails(jars, run_cli) -> None:
    code, rep = report(run_cli, "sign-check", jars["unsigned"], jars["signed"],
                       "--trusted", OTHER_CA)  # fmt: skip
    assert code == 1
    notes = " ".join(artifact(rep, "app.jar")["notes"])
    assert "signature-only refused" in notes
    assert "does not chain to a pinned certificate" in notes


@pytest.mark.slow
def test_every_signer_of_a_twice_signed_jar_is_reported(jars, run_cli) -> None:
    assert jarsigner_verifies(jars["two"])
    code, rep = report(run_cli, "diff", jars["two"], jars["unsigned"], "--allow", "signature")
    assert code == 0, rep
    notes = artifact(rep, "app.jar")["notes"]
    assert any(n.startswith("META-INF/SIGNER.RSA: subject") and SIGNER in n for n in notes)
    assert any(n.startswith("META-INF/RELEASE.RSA: subject") and "CN=unrelated signer" in n
               for n in notes)  # fmt: skip
    # two signers from two CAs: pinning one CA refuses the other signer
    code, rep = report(run_cli, "sign-check", jars["unsigned"], jars["two"], "--trusted", CA)
    assert code == 1
    assert "RELEASE.RSA" in " ".join(artifact(rep, "app.jar")["notes"])


@pytest.mark.slow
def test_a_rebuild_without_manifest_gets_jarsigners_own(jars, run_cli) -> None:
    code, rep = report(run_cli, "diff", jars["bare-signed"], jars["bare-unsigned"],
                       "--allow", "signature")  # fmt: skip
    assert code == 0, rep
    assert artifact(rep, "app.jar")["verdict"] == "signature-only"


@pytest.mark.slow
def test_timestamped_signature_is_verified(jars, run_cli) -> None:
    """jarsigner -tsa (a local RFC 3161 TSA): the token is checked over the signer's signature."""
    assert jarsigner_verifies(jars["stamped"])
    code, rep = report(run_cli, "sign-check", jars["unsigned"], jars["stamped"], "--trusted", CA)
    assert code == 0, rep
    notes = artifact(rep, "app.jar")["notes"]
    assert any(SIGNER in n for n in notes)
    assert any("rfc3161 countersignature at" in n and "CN=reprover test TSA" in n for n in notes)
    with zipfile.ZipFile(jars["stamped"]) as z:
        sf, blob = z.read("META-INF/SIGNER.SF"), z.read("META-INF/SIGNER.RSA")
    signer = verify_detached(blob, sf, trusted=load_trusted((CA,)), label="SIGNER.RSA")
    (stamp,) = signer.countersignatures
    assert (stamp.kind, stamp.trusted) == ("rfc3161", True)
    assert stamp.signer.startswith("CN=reprover test TSA")


@pytest.mark.slow
def test_ec_signature_from_a_keytool_key(jars, run_cli) -> None:
    assert jarsigner_verifies(jars["ec"])
    code, rep = report(run_cli, "diff", jars["ec"], jars["unsigned"], "--allow", "signature")
    assert code == 0, rep
    notes = artifact(rep, "app.jar")["notes"]
    assert any(n.startswith("META-INF/SIGNER.EC: subject") and "EC test signer" in n for n in notes)


@pytest.mark.slow
def test_sha1_digests_refuse_the_proof(jars, run_cli) -> None:
    """jarsigner -digestalg SHA-1 signs; Java 17 itself treats the JAR as unsigned."""
    assert not jarsigner_verifies(jars["sha1"])
    code, rep = report(run_cli, "diff", jars["sha1"], jars["unsigned"], "--allow", "signature")
    assert code == 1
    assert "SHA-1 and MD5 cannot prove" in " ".join(artifact(rep, "app.jar")["notes"])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"Manifest-Version: 1.0\r\n\r\nName: a\r\nX: 1\r\nx: 2\r\n\r\n", "appears twice"),
        (b"Manifest-Version: 1.0\r\n\r\nName: a\r\n\r\nName: a\r\n\r\n", "two sections name"),
        (b"Manifest-Version: 1.0\r\n\r\n\r\nName: a\r\n\r\n", "two blank lines"),
        (b"Manifest-Version: 1.0\r\nMain-Class: x", "no newline"),
        (b"Manifest-Version: 1.0\rMain-Class: x\r\n", "bare CR"),
        (b"Manifest-Version: " + b"1" * 60 + b"\r\n", "at most 72"),
        (b"Manifest-Version: 1.0\r\n\r\nname: a\r\n\r\n", "does not start with 'Name"),
        (b"Manifest-Version: 1.0\r\nName: a\r\n\r\n", "main section has a Name"),
        (b"Manifest-Version:1.0\r\n", "malformed header"),
        (b" continued\r\n", "continuation"),
    ],
)
def test_manifest_grammar_refuses_ambiguity(text: bytes, reason: str) -> None:
    with pytest.raises(VerificationError, match=reason):
        parse_manifest(text, "m")


def test_empty_manifest_is_an_empty_main_section() -> None:
    parsed = parse_manifest(b"", "m")
    assert (parsed.main.attributes, parsed.sections) == ((), {})


def test_manifest_grammar_reads_continuations_and_both_newlines() -> None:
    crlf = b"Manifest-Version: 1.0\r\n\r\nName: a/very\r\n /long.class\r\nSHA-256-Digest: x\r\n\r\n"
    lf = crlf.replace(b"\r\n", b"\n")
    for text in (crlf, lf):
        parsed = parse_manifest(text, "m")
        assert list(parsed.sections) == ["a/very/long.class"]
        assert parsed.main.raw + parsed.sections["a/very/long.class"].raw == text


@pytest.mark.slow
def test_signed_jar_inside_a_zip_names_its_signer_at_its_layer(jars, run_cli, tmp_path) -> None:
    (tmp_path / "released").mkdir()
    (tmp_path / "rebuilt").mkdir()
    released, rebuilt = (
        write_zip(tmp_path / side / "bundle.zip",
                  {"lib/app.jar": jars[case].read_bytes(), "README": b"hi\n"})
        for side, case in (("released", "signed"), ("rebuilt", "unsigned"))
    )  # fmt: skip
    code, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert code == 0, rep
    assert artifact(rep, "bundle.zip")["verdict"] == "signature-only"
    inner = artifact(rep, "bundle.zip!lib/app.jar")
    assert inner["verdict"] == "signature-only"
    assert any(SIGNER in n for n in inner["notes"])

"""Attacks on the JAR signature proof: each must leave the JAR `different` with its reason.

The released JARs are assembled here from a manifest, `.SF` files and PKCS#7 blocks written
the way jarsigner writes them and signed with the repository's test keys, so each attack is a
signature a real signer could have made; `test_control_*` shows the assembly itself passes, so
every refusal below is the attack's. Each runs `reprover diff --allow signature` in-process
through the CLI.
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from archive_support import DATE, Entry, artifact, regions, report, write_zip
from jar_support import (
    CLASSES,
    MANIFEST,
    block,
    digest,
    jarsign,
    jdk,
    keystore,
    manifest_for,
    signature_file,
)

SF, RSA = "META-INF/SIGNER.SF", "META-INF/SIGNER.RSA"


def signed(manifest: bytes, files: dict[str, bytes], sf: bytes | None = None) -> list[Entry]:
    """The entries of a released JAR: manifest, one signer's `.SF` and block, then `files`."""
    sf = signature_file(manifest) if sf is None else sf
    return [("META-INF/MANIFEST.MF", manifest), (SF, sf), (RSA, block(sf)), *files.items()]


def pair(tmp: Path, released: list[Entry], rebuilt: list[Entry] | None = None) -> tuple[Path, Path]:
    """Write the released and the rebuilt (default: the plain unsigned JAR) side by side."""
    if rebuilt is None:
        rebuilt = [("META-INF/MANIFEST.MF", MANIFEST), *CLASSES.items()]
    (tmp / "released").mkdir()
    (tmp / "rebuilt").mkdir()
    return (write_zip(tmp / "released" / "app.jar", released),
            write_zip(tmp / "rebuilt" / "app.jar", rebuilt))  # fmt: skip


def refused(run_cli: Any, files: tuple[Path, Path], *more: str) -> str:
    """Run the diff (`signature` and `more` rules allowed); require exit 1 and a `different`
    JAR; return its notes."""
    allow = [a for rule in ("signature", *more) for a in ("--allow", rule)]
    code, rep = report(run_cli, "diff", *files, *allow)
    assert code == 1, rep
    outer = artifact(rep, "app.jar")
    assert outer["verdict"] == "different"
    notes = " ".join(outer["notes"])
    assert "released = rebuilt" not in notes
    return notes


def test_control_assembled_signature_is_signature_only(tmp_path, run_cli) -> None:
    code, rep = report(run_cli, "diff", *pair(tmp_path, signed(manifest_for(CLASSES), CLASSES)),
                       "--allow", "signature")  # fmt: skip
    assert code == 0, rep
    assert artifact(rep, "app.jar")["verdict"] == "signature-only"


@pytest.mark.slow
@pytest.mark.skipif(not jdk(), reason="default-jdk-headless: .ci/apt-packages.txt")
def test_member_changed_then_signed_by_jarsigner(tmp_path, run_cli) -> None:
    """The classic: a backdoored class, then a genuine jarsigner signature over it."""
    evil = dict(CLASSES, **{"app/Main.class": CLASSES["app/Main.class"] + b"backdoor"})
    write_zip(tmp_path / "evil.jar", [("META-INF/MANIFEST.MF", MANIFEST), *evil.items()])
    (tmp_path / "released").mkdir()
    (tmp_path / "rebuilt").mkdir()
    released = jarsign(tmp_path / "evil.jar", tmp_path / "released" / "app.jar",
                       keystore(tmp_path))  # fmt: skip
    rebuilt = write_zip(tmp_path / "rebuilt" / "app.jar",
                        [("META-INF/MANIFEST.MF", MANIFEST), *CLASSES.items()])  # fmt: skip
    refused(run_cli, (released, rebuilt))
    _, rep = report(run_cli, "diff", released, rebuilt, "--allow", "signature")
    assert not regions(artifact(rep, "app.jar"))["zip.entry[app/Main.class].data"]["allowed"]


def test_digests_of_released_content_not_rebuilt_content(tmp_path, run_cli) -> None:
    """An inner archive that differs only by times (allowed) but is signed as released."""
    write_zip(tmp_path / "old.zip", {"a.txt": b"a"})
    write_zip(tmp_path / "new.zip", {"a.txt": b"a"}, date=(2025, 5, 5, 5, 5, 6))
    ours = dict(CLASSES, **{"lib/inner.zip": (tmp_path / "new.zip").read_bytes()})
    theirs = dict(CLASSES, **{"lib/inner.zip": (tmp_path / "old.zip").read_bytes()})
    files = pair(tmp_path, signed(manifest_for(ours), ours),
                 [("META-INF/MANIFEST.MF", MANIFEST), *theirs.items()])  # fmt: skip
    notes = refused(run_cli, files, "archive.mtime")
    assert "'lib/inner.zip'" in notes
    assert "digest does not match" in notes and "rebuilt member" in notes


def test_member_not_covered_by_the_manifest(tmp_path, run_cli) -> None:
    covered = {k: v for k, v in CLASSES.items() if k != "app/Util.class"}
    notes = refused(run_cli, pair(tmp_path, signed(manifest_for(covered), CLASSES)))
    assert "'app/Util.class' is not covered by the manifest" in notes


def test_manifest_entry_for_a_member_that_does_not_exist(tmp_path, run_cli) -> None:
    ghost = dict(CLASSES, **{"app/Ghost.class": b"\xca\xfe"})
    notes = refused(run_cli, pair(tmp_path, signed(manifest_for(ghost), CLASSES)))
    assert "'app/Ghost.class'" in notes and "no signed member" in notes


def test_extra_unsigned_member(tmp_path, run_cli) -> None:
    """A member in the release only (and in no manifest): never allowed, no proof attempted."""
    extra = dict(CLASSES, **{"app/Extra.class": b"\xca\xfe\xba\xbe"})
    code, rep = report(run_cli, "diff", *pair(tmp_path, signed(manifest_for(CLASSES), extra)),
                       "--allow", "signature")  # fmt: skip
    assert code == 1
    found = regions(artifact(rep, "app.jar"))["zip.entry[app/Extra.class]"]
    assert not found["allowed"] and found["detail"] == "only in the released archive"


def test_duplicate_manifest_sections(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    twice = manifest + manifest[len(MANIFEST) :].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    notes = refused(run_cli, pair(tmp_path, signed(twice, CLASSES)))
    assert "two sections name 'app/Main.class'" in notes


def test_duplicate_attribute_in_two_spellings(tmp_path, run_cli) -> None:
    section = f"sha-256-digest: {digest(b'other')}\r\n".encode()
    manifest = manifest_for(CLASSES).replace(b"\r\n\r\nName: app/Util", b"\r\n" + section
                                             + b"\r\nName: app/Util")  # fmt: skip
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES)))
    assert "appears twice in one section" in notes


def test_signature_file_with_a_stale_manifest_digest(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    sf = signature_file(manifest, whole=manifest_for({}))
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES, sf)))
    assert "SIGNER.SF: the manifest digest (stale" in notes


def test_signature_block_over_another_signature_file(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    sf = signature_file(manifest)
    other = sf.replace(b"Created-By: reprover tests", b"Created-By: someone else")
    entries = [("META-INF/MANIFEST.MF", manifest), (SF, sf), (RSA, block(other)),
               *CLASSES.items()]  # fmt: skip
    notes = refused(run_cli, pair(tmp_path, entries))
    assert "SIGNER.RSA: the messageDigest attribute does not match" in notes


def test_two_signature_files_one_of_them_stale(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    good, stale = signature_file(manifest), signature_file(manifest, whole=b"old manifest")
    entries = [*signed(manifest, {}, good), ("META-INF/SECOND.SF", stale),
               ("META-INF/SECOND.RSA", block(stale)), *CLASSES.items()]  # fmt: skip
    notes = refused(run_cli, pair(tmp_path, entries))
    assert "META-INF/SECOND.SF: the manifest digest (stale" in notes


def test_signature_file_spelt_in_lower_case(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    sf = signature_file(manifest)
    entries = [("META-INF/MANIFEST.MF", manifest), ("meta-inf/X.sf", sf), ("META-INF/X.RSA",
               block(sf)), *CLASSES.items()]  # fmt: skip
    notes = refused(run_cli, pair(tmp_path, entries))
    assert "'meta-inf/X.sf' is a signature file to Java but not spelled" in notes


def test_signature_files_equal_but_for_case(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    entries = [*signed(manifest, {}), ("META-INF/signer.SF", b"Signature-Version: 1.0\r\n\r\n"),
               *CLASSES.items()]  # fmt: skip
    notes = refused(run_cli, pair(tmp_path, entries))
    assert "differ only by case" in notes


def test_main_section_changed(tmp_path, run_cli) -> None:
    """A `Main-Class` the rebuild does not have, signed: the JAR would run other code."""
    main = MANIFEST.replace(b"\r\n\r\n", b"\r\nMain-Class: evil.Main\r\n\r\n")
    notes = refused(run_cli, pair(tmp_path, signed(manifest_for(CLASSES, main), CLASSES)))
    assert "main section is not the rebuild's: Main-Class differ" in notes


def test_section_gains_an_attribute(tmp_path, run_cli) -> None:
    name = b"Name: app/Main.class\r\n"
    manifest = manifest_for(CLASSES).replace(name, name + b"Sealed: false\r\n")
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES)))
    assert "attributes other than digests are not the rebuild's (Sealed)" in notes


def test_sha1_only_member_digests(tmp_path, run_cli) -> None:
    manifest = MANIFEST + b"".join(
        f"Name: {n}\r\nSHA1-Digest: {digest(d, 'sha1')}\r\n\r\n".encode()
        for n, d in CLASSES.items()
    )
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES)))
    assert "only sha1 digests; SHA-1 and MD5 cannot prove content" in notes


def test_manifest_last_line_without_newline(tmp_path, run_cli) -> None:
    """Java drops an unterminated last line: the two readers would see two manifests."""
    manifest = manifest_for(CLASSES) + b"Name: app/config.properties\r\nX-Hidden: 1"
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES)))
    assert "the last line has no newline" in notes


def write_entries(
    path: Path, entries: list[Entry], *, comments: dict[str, bytes], extras: dict[str, bytes]
) -> Path:
    """`write_zip`'s JAR with a comment or an extra field on some entries."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, DATE)
            info.external_attr, info.create_system = 0o644 << 16, 3
            info.compress_type = zipfile.ZIP_DEFLATED
            info.comment, info.extra = comments.get(name, b""), extras.get(name, b"")
            z.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("comments", "extras", "reason"),
    [
        ({SF: b"unsigned payload"}, {}, "the entry of META-INF/SIGNER.SF carries bytes no "
         "signature covers (comment)"),
        ({}, {"META-INF/MANIFEST.MF": struct.pack("<HH", 0xCAFE, 7) + b"payload"},
         "the entry of META-INF/MANIFEST.MF carries bytes no signature covers (extra[0xcafe]"),
    ],
    ids=["comment on the .SF entry", "unknown extra field on the manifest entry"],
)  # fmt: skip
def test_bytes_in_a_signature_files_entry(tmp_path, run_cli, comments, extras, reason) -> None:
    released, rebuilt = pair(tmp_path, signed(manifest_for(CLASSES), CLASSES))
    write_entries(released, signed(manifest_for(CLASSES), CLASSES), comments=comments,
                  extras=extras)  # fmt: skip
    assert reason in refused(run_cli, (released, rebuilt))


def test_zip_comment_changed_not_dropped(tmp_path, run_cli) -> None:
    """jarsigner drops the ZIP comment; a new one is unsigned bytes."""
    released, rebuilt = pair(tmp_path, signed(manifest_for(CLASSES), CLASSES))
    write_zip(released, signed(manifest_for(CLASSES), CLASSES), comment=b"unsigned payload")
    notes = refused(run_cli, (released, rebuilt))
    assert "the ZIP comment is neither the rebuild's nor empty" in notes


def test_members_reordered_beyond_what_jarsigner_does(tmp_path, run_cli) -> None:
    swapped = dict(reversed(list(CLASSES.items())))
    notes = refused(run_cli, pair(tmp_path, signed(manifest_for(CLASSES), swapped)))
    assert "stored in another order than the rebuild's" in notes


def test_signature_file_with_an_unknown_main_attribute(tmp_path, run_cli) -> None:
    manifest = manifest_for(CLASSES)
    sf = signature_file(manifest).replace(b"\r\n\r\n", b"\r\nX-Android-APK-Signed: 2\r\n\r\n", 1)
    notes = refused(run_cli, pair(tmp_path, signed(manifest, CLASSES, sf)))
    assert "main attribute 'X-Android-APK-Signed' is not one this checks" in notes


def test_rebuild_that_is_already_signed(tmp_path, run_cli) -> None:
    ours = signed(manifest_for(CLASSES), CLASSES)
    theirs = signed(manifest_for(CLASSES), CLASSES)
    theirs[1] = ("META-INF/OTHER.SF", theirs[1][1])
    theirs[2] = ("META-INF/OTHER.RSA", theirs[2][1])
    notes = refused(run_cli, pair(tmp_path, ours, theirs))
    assert "the rebuilt JAR already holds signature file 'META-INF/OTHER" in notes


def test_empty_released_manifest(tmp_path, run_cli) -> None:
    """An empty MANIFEST.MF with a valid .SF over it (crashed the proof before)."""
    notes = refused(run_cli, pair(tmp_path, signed(b"", CLASSES)))
    assert "the released manifest's main section is not the rebuild's" in notes

"""Mach-O as Apple's tools sign (issue 13 item 2, issue 12 item 4): linker-signed rebuilds
against `codesign -s -`, entitled, Developer ID (CMS) and universal releases, through the
library and the real CLI. Fixtures: scripts/make_signature_fixtures.py (group `apple`)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from reprover.cli import main
from reprover.compare.signatures.macho import prove_macho_signature_only
from reprover.compare.signatures.macho_assertions import MachOPins
from reprover.compare.signatures.macho_layout import fat_slices, find_code_signature
from reprover.errors import VerificationError
from signature_support import fx

CA, OTHER_CA = fx("ca.pem"), fx("other-ca.pem")
LINKED = fx("macho-adhoc")  # what ld64 writes: linker-signed, flags 0x20002
PLIST = fx("entitlements.plist")


def sign_check(*args: object) -> int:
    return main(["sign-check", *(str(a) for a in args)])


def test_codesign_adhoc_over_a_linker_signed_rebuild(capsys: pytest.CaptureFixture[str]) -> None:
    proof = prove_macho_signature_only(fx("macho-codesign"), LINKED)
    (one,) = proof.slices
    assert (one.identifier, one.flags, one.team_id, one.signer) == ("engine", 0x2, None, None)
    assert one.exec_seg == (0, 0x1000, 1)
    assert one.requirements == "empty set"
    assert one.entitlements == "none"
    regions = [r.region for r in proof.regions]
    assert regions[:3] == [
        "macho.load_command.LC_CODE_SIGNATURE.datasize",
        "macho.load_command.__LINKEDIT.vmsize",
        "macho.load_command.__LINKEDIT.filesize",
    ]
    assert "macho.code_signature.blob[0x10000]" in regions  # the empty CMS wrapper
    assert sign_check(LINKED, fx("macho-codesign"), "--format", "json") == 0
    report = json.loads(capsys.readouterr().out)
    (artifact,) = report["artifacts"]
    assert artifact["verdict"] == "signature-only"
    assert all(d["rule"] == "signature" for d in artifact["differences"])


def test_entitlements_pinned_from_the_source() -> None:
    with pytest.raises(
        VerificationError, match=r"entitlements \['com.apple.security.cs.allow-jit'\]"
    ):
        prove_macho_signature_only(fx("macho-entitled"), LINKED)
    proof = prove_macho_signature_only(
        fx("macho-entitled"), LINKED, pins=MachOPins(entitlements=PLIST.read_bytes())
    )
    assert "com.apple.security.cs.allow-jit" in proof.slices[0].entitlements
    assert sign_check(LINKED, fx("macho-entitled"), "--entitlements", PLIST) == 0


def test_developer_id_cms_verified_against_pinned_trust(
    capsys: pytest.CaptureFixture[str],
) -> None:
    proof = prove_macho_signature_only(
        fx("macho-devid"), LINKED, trusted=(CA,), pins=MachOPins(flags=0x10000)
    )
    signer = proof.slices[0].signer
    assert signer is not None
    assert signer.subject == "CN=reprover test release signer"
    assert signer.chain[-1].startswith("CN=reprover test code-signing CA")
    args = (LINKED, fx("macho-devid"), "--macho-flags", "0x10000")
    assert sign_check(*args, "--trusted", CA) == 0
    assert sign_check(*args) == 0  # verified, reported as not pinned
    assert "(signer not pinned)" in capsys.readouterr().out
    assert sign_check(*args, "--trusted", OTHER_CA) == 1
    assert "does not chain to a pinned certificate" in capsys.readouterr().err
    assert sign_check(LINKED, fx("macho-devid"), "--trusted", CA) == 1  # runtime flag unpinned
    assert "macho_flags" in capsys.readouterr().err


def test_developer_id_cms_over_another_code_directory_fails(tmp_path: Path) -> None:
    data = bytearray(fx("macho-devid").read_bytes())
    at = data.find(b"engine\0", 0x2000)
    data[at] = ord("E")  # the identifier inside the CodeDirectory the CMS signed
    bad = tmp_path / "engine"
    bad.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="messageDigest"):
        prove_macho_signature_only(bad, LINKED, pins=MachOPins(identifier="Engine", flags=0x10000))


def test_universal_files_slice_by_slice(capsys: pytest.CaptureFixture[str]) -> None:
    released, rebuilt = fx("macho-universal-codesign"), fx("macho-universal-linker")
    proof = prove_macho_signature_only(released, rebuilt)
    offsets = [s[2] for s in fat_slices(released.read_bytes(), "u")]
    assert [s.offset for s in proof.slices] == offsets
    assert [s.page_size for s in proof.slices] == [4096, 16384]
    assert proof.regions[0].region == "macho.fat_header"
    assert sign_check(rebuilt, released) == 0
    assert main(["diff", str(released), str(rebuilt), "--allow", "signature", "-q"]) == 0
    capsys.readouterr()


def test_universal_code_byte_changed_is_located(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One code byte of the arm64 slice changed: sign-check fails and its ledger (the one diff
    shows) holds the byte."""
    rebuilt = bytearray(fx("macho-universal-linker").read_bytes())
    arm64 = fat_slices(bytes(rebuilt), "u")[1][2]
    text = arm64 + 0x4000 - 0x100  # inside the arm64 slice's first page of __TEXT
    rebuilt[text] ^= 0xFF
    path = tmp_path / "engine"
    path.write_bytes(bytes(rebuilt))
    assert sign_check(path, fx("macho-universal-codesign"), "--format", "json") == 1
    report = json.loads(capsys.readouterr().out)
    (artifact,) = report["artifacts"]
    assert artifact["verdict"] == "different"
    assert any(
        d["offset"] <= text < d["offset"] + max(d["length"], 1) for d in artifact["differences"]
    )
    detail = report["checks"][0]["detail"]
    assert detail.endswith(
        f"at {text - arm64:#x} (file offset {text:#x}, in the slice at {arm64:#x})"
    )


def test_failing_pe_sign_check_ledger_shows_the_code_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signed = bytearray(fx("signed.exe").read_bytes())
    signed[0x403] ^= 0x01
    bad = tmp_path / "signed.exe"
    bad.write_bytes(bytes(signed))
    assert sign_check(fx("unsigned.exe"), bad, "--format", "json") == 1
    (artifact,) = json.loads(capsys.readouterr().out)["artifacts"]
    hit = [d for d in artifact["differences"] if d["offset"] <= 0x403 < d["offset"] + d["length"]]
    assert hit and hit[0]["region"].startswith("pe.section[.text]")
    assert not hit[0]["allowed"]


@pytest.mark.parametrize(
    ("unsigned", "signed", "extra"),
    [
        ("unsigned.exe", "/bin/true", ()),  # an ELF
        ("macho-adhoc", "signed.exe", ()),  # formats differ
        ("unsigned.exe", "signed.exe", ("--macho-flags", "0x2")),  # a Mach-O pin for a PE
        ("macho-adhoc", "macho-codesign", ("--trusted", "ca.pem")),  # ad-hoc names no signer
    ],
)
def test_bad_input_exits_2(unsigned: str, signed: str, extra: tuple[str, ...]) -> None:
    files = [fx(unsigned), Path(signed) if signed.startswith("/") else fx(signed)]
    args = [str(fx(e)) if e.endswith(".pem") else e for e in extra]
    assert main(["sign-check", *map(str, files), *args, "-q"]) == 2


def test_blob_layout_is_read_strictly(tmp_path: Path) -> None:
    """A special-slot hash naming a blob that is absent is refused."""
    data = bytearray(fx("macho-codesign").read_bytes())
    off, _ = find_code_signature(bytes(data), "m") or (0, 0)
    count = struct.unpack_from(">I", data, off + 8)[0]
    assert count == 3
    bad = tmp_path / "engine"
    struct.pack_into(">I", data, off + 12 + 8, 0x5)  # requirements blob relabelled entitlements
    bad.write_bytes(bytes(data))
    with pytest.raises(VerificationError, match=r"unknown blob|slot"):
        prove_macho_signature_only(bad, LINKED)


def test_universal_with_an_unsigned_slice(tmp_path: Path) -> None:
    """cryptography's universal2 wheel signs only its arm64 slice: the unsigned slice must be
    the rebuilt slice byte for byte; at least one slice must be signed."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import macho_sign

    x86 = fx("macho-unsigned").read_bytes()
    arm = fx("macho-arm64").read_bytes()
    signed_arm = macho_sign.sign(arm, identifier="engine", page_log=14)
    released, rebuilt = tmp_path / "released", tmp_path / "rebuilt"
    released.write_bytes(
        macho_sign.fat([(macho_sign.CPU_X86_64, x86), (macho_sign.CPU_ARM64, signed_arm)])
    )
    rebuilt.write_bytes(macho_sign.fat([(macho_sign.CPU_X86_64, x86), (macho_sign.CPU_ARM64, arm)]))
    proof = prove_macho_signature_only(released, rebuilt)
    assert any("not signed, and byte-identical" in line for line in proof.findings())
    assert sign_check(rebuilt, released) == 0
    changed = bytearray(x86)
    changed[0x1000] ^= 1
    rebuilt.write_bytes(
        macho_sign.fat([(macho_sign.CPU_X86_64, bytes(changed)), (macho_sign.CPU_ARM64, arm)])
    )
    with pytest.raises(VerificationError, match="unsigned slice at 0x4000 differs"):
        prove_macho_signature_only(released, rebuilt)
    both = macho_sign.fat([(macho_sign.CPU_X86_64, x86), (macho_sign.CPU_ARM64, x86)])
    released.write_bytes(both)
    rebuilt.write_bytes(both)
    with pytest.raises(VerificationError, match="no slice is signed"):
        prove_macho_signature_only(released, rebuilt)


def test_realworld_counterpart_of_a_codesign_file_is_what_ld64_writes() -> None:
    """scripts/realworld.py makes the unsigned counterpart of a real Mach-O by re-signing each
    slice as ld64 would; on our own files that gives back ld64's bytes exactly."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent.parent / "scripts"))
    import realworld

    counterpart = realworld._linker_signed_slice(fx("macho-codesign").read_bytes())
    linked = LINKED.read_bytes()
    dataoff, _ = find_code_signature(linked, "ld64") or (0, 0)
    assert counterpart[:dataoff] == linked[:dataoff]  # every byte but the signature blob
    assert len(counterpart) == len(linked)


# Debian's lld ships ld64.lld under the versioned LLVM folder (llvm-14 on bookworm): take the
# newest, so a newer LLVM on a fresh machine runs the test rather than skipping it.
LD64 = max(
    (str(p) for p in Path("/usr/lib").glob("llvm-*/bin/ld64.lld")),
    key=lambda path: int(path.split("/llvm-")[1].split("/")[0]),
    default=None,
)
MACHO_MAKEFILE = """\
all: out/engine
out/engine: macho.c
\tmkdir -p out
\tclang -target x86_64-apple-macos11 -ffreestanding -nostdlib -O1 -c macho.c -o out/macho.o
\t$(LD64) -arch x86_64 -platform_version macos 11.0 11.0 -e _start \\
\t  -adhoc_codesign -o out/engine out/macho.o
\trm out/macho.o
""".replace("$(LD64)", LD64 or "ld64.lld")


@pytest.mark.slow
@pytest.mark.skipif(LD64 is None, reason="needs ld64.lld (Debian package lld)")
def test_verify_pins_entitlements_committed_in_the_source(tmp_path: Path) -> None:
    """verify: the vendor signs its Mach-O with the entitlements committed in the source: pass;
    the same release without the pin, or signed with an entitlement the source lacks: fail."""
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import macho_sign
    from conftest import git, make_repo

    plist = PLIST.read_text()
    repo = tmp_path / "engine"
    files = {"macho.c": fx("macho.c").read_text(), "Makefile": MACHO_MAKEFILE}
    commit = make_repo(repo, {**files, "macos/engine.entitlements": plist})
    vendor = tmp_path / "vendor"
    git(tmp_path, "clone", "--quiet", "--no-local", str(repo), str(vendor))
    subprocess.run(["make"], cwd=vendor, check=True, capture_output=True)
    linked = (vendor / "out" / "engine").read_bytes()
    release = tmp_path / "release"
    release.mkdir()
    der = macho_sign.der_entitlements({"com.apple.security.cs.allow-jit": True})
    signed = macho_sign.sign(
        linked, identifier="engine", entitlements=plist.encode(), entitlements_der=der
    )
    (release / "engine").write_bytes(signed)
    body = (
        f'[source]\nrepo = "engine"\ncommit = "{commit}"\n'
        f'[build]\ncommand = ["make"]\npath = "{tmp_path / "build"}"\n'
        '[release]\npath = "release"\n[policy]\nallow = ["signature"]\n'
    )
    manifest = tmp_path / "reprover.toml"
    manifest.write_text(body + '[signature]\nentitlements = "macos/engine.entitlements"\n')
    assert main(["verify", str(manifest), "-q"]) == 0
    manifest.write_text(body)
    assert main(["verify", str(manifest), "-q"]) == 1  # an entitlement nobody pinned
    more = plist.replace("<dict>", "<dict>\n\t<key>com.apple.security.get-task-allow</key><true/>")
    (release / "engine").write_bytes(
        macho_sign.sign(linked, identifier="engine", entitlements=more.encode())
    )
    manifest.write_text(body + '[signature]\nentitlements = "macos/engine.entitlements"\n')
    assert main(["verify", str(manifest), "-q"]) == 1  # the signer added one


def test_codesign_leaves_the_linker_signature_tail_in_place(tmp_path: Path) -> None:
    """Real pillow dylibs: codesign wrote a smaller SuperBlob over the linker's signature and
    left the rest of it. Those bytes pass only when they are the rebuild's own."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import macho_sign

    linked = LINKED.read_bytes()
    rebuilt = macho_sign.sign(
        linked, identifier="engine", flags=0x20002, requirements=None, cms=False, page_log=9
    )  # a linker signature with 512-byte pages: a large CodeDirectory
    dataoff, datasize = find_code_signature(rebuilt, "r") or (0, 0)
    resigned = macho_sign.sign(rebuilt, identifier="engine", size=datasize)
    length = struct.unpack_from(">I", resigned, dataoff + 4)[0]
    released = resigned[: dataoff + length] + rebuilt[dataoff + length :]
    assert any(released[dataoff + length :])  # the old signature's remains
    paths = {"rebuilt": tmp_path / "rebuilt", "released": tmp_path / "released"}
    paths["rebuilt"].write_bytes(rebuilt)
    paths["released"].write_bytes(released)
    proof = prove_macho_signature_only(paths["released"], paths["rebuilt"])
    assert proof.slices[0].requirements == "empty set"
    tampered = bytearray(released)
    tampered[dataoff + length + 40] ^= 0x01
    paths["released"].write_bytes(bytes(tampered))
    with pytest.raises(VerificationError, match="not the rebuilt file's own"):
        prove_macho_signature_only(paths["released"], paths["rebuilt"])


def test_developer_id_cms_with_an_rfc3161_timestamp() -> None:
    """codesign --timestamp: an RFC 3161 token (openssl ts, the test TSA) in the CMS's unsigned
    attributes is verified over the CMS signature and reported."""
    proof = prove_macho_signature_only(
        fx("macho-devid-stamped"), LINKED, trusted=(CA,), pins=MachOPins(flags=0x10000)
    )
    signer = proof.slices[0].signer
    assert signer is not None
    (stamp,) = signer.countersignatures
    assert (stamp.kind, stamp.trusted) == ("rfc3161", True)
    assert stamp.signer.startswith("CN=reprover test TSA")
    assert any("rfc3161 timestamp at" in line and "(pinned)" in line for line in proof.findings())


def test_bundle_bindings_are_reported(tmp_path: Path) -> None:
    """A bundle executable's CodeDirectory binds its Info.plist (special slot 1): the file is
    not in the binary, so the binding is reported, not checked."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import macho_sign

    plist = b"<plist><dict><key>CFBundleIdentifier</key><string>x</string></dict></plist>"
    released = tmp_path / "engine"
    released.write_bytes(
        macho_sign.sign(LINKED.read_bytes(), identifier="engine", info_plist=plist)
    )
    proof = prove_macho_signature_only(released, LINKED)
    assert any("binds a file outside the binary: Info.plist (hash" in f for f in proof.findings())

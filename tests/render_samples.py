"""Reports for the four outcomes a reviewer meets: identical, signature-only, equivalent, tampered.

The values are shaped like what `reprover verify` records (real region names, offsets inside the
file, digests of the right length); renderers are pure functions of a `Report`, so constructing
one is how their output is pinned down. `tests/test_render_e2e.py` renders real runs too.
"""

from __future__ import annotations

import hashlib

from reprover.model import (
    ArtifactResult,
    ArtifactVerdict,
    BuildInfo,
    Cause,
    CheckResult,
    Difference,
    Digest,
    Kind,
    Policy,
    Report,
    SourcePin,
)

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def sha(text: str) -> str:
    """A real SHA-256 of `text`, so digests look and sort like real ones."""
    return hashlib.sha256(text.encode()).hexdigest()


PIN = SourcePin(
    repo="https://git.vendor.example/engine.git",
    commit="4f1c2a9e8b7d6c5b4a39281706f5e4d3c2b1a098",
    tree="9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3",
    committer_time=1767268800,
    signer="ada@vendor.example (ssh ED25519 SHA256:Qm9vYmFy)",
)
BUILD = BuildInfo(
    command=("make", "release"),
    build_path="/tmp/reprover-build",
    env={"CC": "x86_64-w64-mingw32-gcc"},
    toolchain={
        "x86_64-w64-mingw32-gcc": "x86_64-w64-mingw32-gcc (GCC) 12-win32",
        "make": "GNU Make 4.3",
    },
    network_isolated=True,
    isolation="unshare: new user+network namespace",
)


def _report(
    artifacts: tuple[ArtifactResult, ...],
    checks: tuple[CheckResult, ...] = (),
    *,
    allow: tuple[str, ...] = (),
    strict: bool = False,
) -> Report:
    return Report(
        command="verify",
        artifacts=artifacts,
        checks=checks,
        source=PIN,
        build=BUILD,
        manifest_sha256=sha("manifest"),
        policy=Policy(allow=allow),
        policy_sha256=sha("policy"),
        strict=strict,
    )


SIGNED_CHECK = CheckResult("source-signature", True, f"commit signed by {PIN.signer}")


def identical() -> Report:
    """Two artifacts, byte for byte the same."""
    return _report(
        (
            ArtifactResult(
                "bin/scanner",
                ArtifactVerdict.IDENTICAL,
                Digest(sha("a"), 18_432),
                Digest(sha("a"), 18_432),
            ),
            ArtifactResult(
                "lib/libsig.so",
                ArtifactVerdict.IDENTICAL,
                Digest(sha("b"), 9_120),
                Digest(sha("b"), 9_120),
            ),
        ),
        (SIGNED_CHECK,),
    )


def signature_only() -> Report:
    """A signed PE: the release is the rebuild plus an Authenticode signature."""
    diffs = (
        Difference(
            0xD8,
            4,
            "pe.optional_header.CheckSum",
            Kind.CHECKSUM,
            True,
            Cause.CONSEQUENCE,
            ("pe.headers", "pe.optional_header"),
            rule="signature",
        ),
        Difference(
            0x128,
            8,
            "pe.data_directory[SECURITY]",
            Kind.SIGNATURE,
            True,
            Cause.CONSEQUENCE,
            ("pe.headers", "pe.optional_header"),
            rule="signature",
        ),
        Difference(
            0x6A00,
            0x1A38,
            "pe.certificate_table",
            Kind.SIGNATURE,
            True,
            Cause.ROOT,
            ("pe.overlay",),
            rule="signature",
            detail="PKCS#7 SignedData, 1 signer",
        ),
    )
    artifact = ArtifactResult(
        "scanner.exe",
        ArtifactVerdict.SIGNATURE_ONLY,
        Digest(sha("signed"), 0x6A00 + 0x1A38),
        Digest(sha("unsigned"), 0x6A00),
        diffs,
        ("released = rebuilt + Authenticode signature by CN=Vendor Release Signing",),
    )
    checks = (
        SIGNED_CHECK,
        CheckResult("authenticode", True, "signature valid, signer CN=Vendor Release Signing"),
    )
    return _report((artifact,), checks, allow=("signature",))


def equivalent() -> Report:
    """An ELF that differs only in its build id and an embedded timestamp, both allowed."""
    diffs = (
        Difference(
            0x2C4,
            20,
            "elf.note[.note.gnu.build-id]",
            Kind.BUILD_ID,
            True,
            Cause.CONSEQUENCE,
            ("elf.segment[PT_NOTE]",),
            rule="build-id",
        ),
        Difference(
            0x2010,
            11,
            "elf.section[.rodata]",
            Kind.TIMESTAMP,
            True,
            Cause.ROOT,
            ("elf.segment[PT_LOAD#0]",),
            symbol="banner",
            rule="timestamp",
        ),
    )
    artifact = ArtifactResult(
        "bin/scanner",
        ArtifactVerdict.EQUIVALENT,
        Digest(sha("e1"), 18_432),
        Digest(sha("e2"), 18_432),
        diffs,
    )
    return _report((artifact,), (SIGNED_CHECK,), allow=("build-id", "timestamp"))


def tampered(*, runs: int = 6) -> Report:
    """A release whose code was changed after the build; `runs` sets the ledger's length."""
    diffs = [
        Difference(
            0x88,
            4,
            "pe.coff.TimeDateStamp",
            Kind.TIMESTAMP,
            True,
            Cause.ROOT,
            ("pe.headers", "pe.coff"),
            rule="timestamp",
        ),
    ]
    step = max(2, min(0x40, 0x3E00 // runs))
    diffs += [
        Difference(
            0x1400 + step * i,
            step // 2,
            ".text",
            Kind.CODE,
            False,
            Cause.ROOT,
            ("pe.section[.text]",),
            symbol=f"match_signature+0x{0x10 * i:x}",
        )
        for i in range(runs)
    ]
    diffs.append(
        Difference(0x5200, 16, ".data", Kind.DATA, False, Cause.ROOT, ("pe.section[.data]",))
    )
    bad = ArtifactResult(
        "scanner.exe",
        ArtifactVerdict.DIFFERENT,
        Digest(sha("t1"), 0x6A00),
        Digest(sha("t2"), 0x6A00),
        tuple(diffs),
    )
    good = ArtifactResult(
        "sigdb.bin", ArtifactVerdict.IDENTICAL, Digest(sha("db"), 4096), Digest(sha("db"), 4096)
    )
    checks = (
        SIGNED_CHECK,
        CheckResult(
            "in-toto",
            False,
            "layout verification failed",
            (
                "step 'build': link not signed by a functionary the layout names",
                "product scanner.exe does not match the build step's product",
            ),
        ),
    )
    return _report((bad, good), checks, allow=("timestamp",))


def hostile() -> Report:
    """Attacker-controlled strings everywhere the report holds them."""
    diff = Difference(
        0x10,
        2,
        f"elf.section[{XSS}]",
        Kind.CODE,
        False,
        Cause.ROOT,
        (f"seg{XSS}",),
        symbol=XSS,
        detail=XSS,
    )
    artifact = ArtifactResult(
        f"bin/{XSS}",
        ArtifactVerdict.DIFFERENT,
        Digest(sha("h1"), 64),
        Digest(sha("h2"), 64),
        (diff,),
        (f"note {XSS}",),
    )
    check = CheckResult(f"check{XSS}", False, f"detail {XSS}", (f"finding {XSS}",))
    return Report(
        command="verify",
        artifacts=(artifact,),
        checks=(check,),
        source=SourcePin(f"https://x.example/{XSS}", "a" * 40, "b" * 40, 0, signer=XSS),
        build=BuildInfo(XSS, f"/tmp/{XSS}", {XSS: XSS}, {XSS: XSS}, True, XSS),
        policy=Policy(allow=(XSS,)),
    )


def inconclusive() -> Report:
    """Nothing was compared and no check failed: the run cannot say yes or no."""
    return Report(command="verify", artifacts=(), checks=())


ALL = {
    "identical": identical,
    "signature-only": signature_only,
    "equivalent": equivalent,
    "tampered": tampered,
}

EVERY = {**ALL, "hostile": hostile, "inconclusive": inconclusive}

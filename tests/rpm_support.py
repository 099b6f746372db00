"""Real RPMs for the tests: built by rpmbuild, signed by rpmsign with a throwaway GnuPG home.

`build_rpm` makes a deterministic package; `Signer` is a fresh OpenPGP key in its own GnuPG
home (never the user's keyring) that signs with `rpmsign --addsign` or makes a detached
signature with gpg; `read_signature_header` and `write_rpm` take a package apart and put it
back together the way rpm lays a signature header out (index sorted by tag, data in that
order with the alignment rpm writes, the region trailer last, the reserved space sized so the
header keeps its size), so attack tests change exactly one thing.

rpmsign here needs `%__gpg` pointed at gpg: Debian's rpm defaults it to /usr/bin/gpg2, which
Debian does not ship ("gpg exec failed").
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from archive_support import FIXTURES

SPEC = """Name: hello
Version: 1.0
Release: 1
Summary: test
License: MIT
BuildArch: noarch
%global _binaries_in_noarch_packages_terminate_build 0
%global debug_package %{nil}
%global __os_install_post %{nil}
%description
test
%install
mkdir -p %{buildroot}/usr/bin
cp %{_sourcedir}/hello %{buildroot}/usr/bin/hello
chmod 755 %{buildroot}/usr/bin/hello
%files
/usr/bin/hello
"""
TOOLS = ("rpmbuild", "rpmsign", "rpmkeys", "gpg", "gpgv", "gpgconf")
MISSING = [t for t in TOOLS if shutil.which(t) is None]
ALIGN = {3: 2, 4: 4, 5: 8}
SIZES = {0: 0, 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 7: 1}
REGION, RESERVED = 62, 1008

Tag = tuple[int, int, int, bytes]  # (tag, type, count, data)


def build_rpm(
    root: Path, out: Path, binary: bytes, epoch: int, name: str = "hello", *, spec: str = SPEC
) -> Path:
    """An RPM holding /usr/bin/hello = `binary` (as `spec` says), built at SOURCE_DATE_EPOCH
    `epoch`."""
    top = root / f"rpm-{name}-{epoch}-{hash(binary) & 0xFFFF}"
    (top / "SOURCES").mkdir(parents=True)
    (top / "SOURCES" / "hello").write_bytes(binary)
    os.utime(top / "SOURCES" / "hello", (1_600_000_000, 1_600_000_000))
    (top / "hello.spec").write_text(spec.replace("Name: hello", f"Name: {name}"))
    defines = {
        "_topdir": top / "top",
        "_sourcedir": top / "SOURCES",
        "_buildhost": "builder",
        "use_source_date_epoch_as_buildtime": 1,
        "clamp_mtime_to_source_date_epoch": 1,
    }
    argv = ["rpmbuild", "-bb", *[x for k, v in defines.items() for x in ("--define", f"{k} {v}")]]
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "HOME": str(top)}
    subprocess.run([*argv, str(top / "hello.spec")], env=env, check=True, capture_output=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(next((top / "top" / "RPMS").rglob("*.rpm")), out)
    return out


class Signer:
    """A fresh OpenPGP key in a throwaway GnuPG home; `close` stops the agent gpg started."""

    def __init__(self, home: Path, user_id: str, algorithm: str = "rsa2048") -> None:
        self.home, self.user_id = home, user_id
        home.mkdir(mode=0o700, parents=True)
        self.gpg("--quick-gen-key", user_id, algorithm, "sign", "never")
        listing = self.gpg("--with-colons", "--list-keys", user_id).decode()
        self.fingerprint = next(ln.split(":")[9] for ln in listing.splitlines()
                                if ln.startswith("fpr:"))  # fmt: skip
        self.public = home / "signer.asc"
        self.public.write_bytes(self.gpg("--armor", "--export", self.fingerprint))

    def gpg(self, *args: str, data: bytes | None = None) -> bytes:
        argv = ["gpg", "--homedir", str(self.home), "--batch", "--pinentry-mode", "loopback",
                "--passphrase", "", *args]  # fmt: skip
        return subprocess.run(argv, input=data, check=True, capture_output=True).stdout

    def detached(self, data: bytes, *extra: str) -> bytes:
        """A binary detached signature over `data` (extra gpg options such as --textmode)."""
        return self.gpg("--local-user", self.fingerprint, "--digest-algo", "SHA256", *extra,
                        "--detach-sign", "--output", "-", data=data)  # fmt: skip

    def rpmsign(self, unsigned: Path, out: Path, *, rpmv3: bool = False) -> Path:
        """`rpmsign --addsign` a copy of `unsigned` at `out` (with `--rpmv3`: legacy tags too)."""
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(unsigned, out)
        defines = {"__gpg": shutil.which("gpg"), "_gpg_path": self.home,
                   "_gpg_name": self.fingerprint}  # fmt: skip
        argv = ["rpmsign", *[x for k, v in defines.items() for x in ("--define", f"{k} {v}")],
                "--addsign", *(["--rpmv3"] if rpmv3 else []), str(out)]  # fmt: skip
        env = {**os.environ, "GNUPGHOME": str(self.home)}
        subprocess.run(argv, env=env, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        return out

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "all"],
                       check=False, capture_output=True)  # fmt: skip


def rpmkeys_check(rpm: Path, key: Path, db: Path) -> str:
    """`rpmkeys -Kv` with `key` imported into a private rpm database: the oracle."""
    db.mkdir(parents=True, exist_ok=True)
    subprocess.run(["rpmkeys", "--dbpath", str(db), "--import", str(key)], check=True,
                   capture_output=True)  # fmt: skip
    done = subprocess.run(["rpmkeys", "--dbpath", str(db), "-Kv", str(rpm)], check=False,
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout + done.stderr


def _header(data: bytes, start: int) -> tuple[list[Tag], int]:
    count, size = struct.unpack(">II", data[start + 8 : start + 16])
    base = start + 16 + 16 * count
    tags = []
    for i in range(count):
        tag, kind, offset, n = struct.unpack_from(">IIII", data, start + 16 + 16 * i)
        if kind in (6, 8, 9):
            end = offset
            for _ in range(n if kind != 6 else 1):
                end = data.index(b"\0", base + end) + 1 - base
            length = end - offset
        else:
            length = SIZES[kind] * n
        tags.append((tag, kind, n, data[base + offset : base + offset + length]))
    return tags, base + size


def read_signature_header(path: Path) -> tuple[bytes, list[Tag], int, bytes]:
    """(lead, signature header tags in index order, its size, main header and payload)."""
    data = path.read_bytes()
    tags, end = _header(data, 96)
    main = end + (8 - end % 8) % 8
    return data[:96], tags, end - 96, data[main:]


def main_header(rest: bytes) -> bytes:
    """The main header's bytes (what a header-only signature covers) at the start of `rest`."""
    count, size = struct.unpack(">II", rest[8:16])
    return rest[: 16 + 16 * count + size]


def layout(tags: list[Tag], size: int | None) -> bytes:
    """A signature header as rpm writes it; the reserved space sized to make `size` bytes."""
    tags = sorted((t for t in tags if t[0] != REGION), key=lambda t: t[0])
    has_region = True
    for _ in range(2):
        store, index = b"", []
        for tag, kind, n, data in tags:
            store += b"\0" * (-len(store) % ALIGN.get(kind, 1))
            index.append(struct.pack(">IIII", tag, kind, len(store), n))
            store += data
        count = len(tags) + has_region
        trailer = struct.pack(">IIiI", REGION, 7, -16 * count, 16)
        index.insert(0, struct.pack(">IIII", REGION, 7, len(store), 16))
        store += trailer
        total = 16 + 16 * count + len(store)
        if size is None or total == size:
            break
        grow = size - total
        tags = [(t, k, n + grow, bytes(n + grow)) if t == RESERVED else (t, k, n, d)
                for t, k, n, d in tags]  # fmt: skip
    head = b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">II", count, len(store))
    return head + b"".join(index) + store


def write_rpm(out: Path, lead: bytes, sig_header: bytes, rest: bytes) -> Path:
    """Lead, signature header, zero padding to 8 bytes, then main header and payload."""
    out.parent.mkdir(parents=True, exist_ok=True)
    pad = b"\0" * (-(96 + len(sig_header)) % 8)
    out.write_bytes(lead + sig_header + pad + rest)
    return out


def resign(
    path: Path,
    out: Path,
    edit: dict[int, bytes | None],
    *,
    size: int | None = -1,
    rest: bytes | None = None,
) -> Path:
    """Copy `path` to `out` with signature header tags set (BIN data) or removed (None).

    `size` -1 keeps the original header size (the reserved space absorbs the change).
    """
    lead, tags, old_size, old_rest = read_signature_header(path)
    by_tag = {t[0]: t for t in tags}
    for tag, data in edit.items():
        if data is None:
            by_tag.pop(tag, None)
        else:
            by_tag[tag] = (tag, 7, len(data), data)
    header = layout(list(by_tag.values()), old_size if size == -1 else size)
    return write_rpm(out, lead, header, old_rest if rest is None else rest)


@dataclass
class Rpms:
    """One unsigned package, its rpmsign-signed copies, and two keys."""

    root: Path
    unsigned: Path
    signed: Path  # rpmsign --addsign: a header-only RSA signature
    legacy: Path  # rpmsign --addsign --rpmv3: header-only RSA and header+payload PGP
    signer: Signer
    other: Signer  # an Ed25519 key nobody pinned


@pytest.fixture(scope="session")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rpms]:
    """Built once per session: rpmbuild, two fresh keys, rpmsign."""
    if MISSING:
        pytest.skip(f"{', '.join(MISSING)} missing (rpm and gnupg: .ci/apt-packages.txt)")
    root = tmp_path_factory.mktemp("rpmsig")
    elf = (FIXTURES / "ledger" / "elf-date" / "a").read_bytes()
    unsigned = build_rpm(root, root / "unsigned" / "hello.rpm", elf, 1_700_000_000)
    signer = Signer(root / "gnupg-signer", "Release Signer <release@example.com>")
    other = Signer(root / "gnupg-other", "Someone Else <else@example.com>", "ed25519")
    try:
        signed = signer.rpmsign(unsigned, root / "signed" / "hello.rpm")
        legacy = signer.rpmsign(unsigned, root / "legacy" / "hello.rpm", rpmv3=True)
        yield Rpms(root, unsigned, signed, legacy, signer, other)
    finally:
        signer.close()
        other.close()


def _set(data: bytearray, start: int, tag: int, value: bytes) -> None:
    """Write `value` over the data of `tag` in the header at `start` (same length)."""
    count = struct.unpack(">I", data[start + 8 : start + 12])[0]
    base = start + 16 + 16 * count
    for i in range(count):
        t, _, offset, _ = struct.unpack_from(">IIII", data, start + 16 + 16 * i)
        if t == tag:
            data[base + offset : base + offset + len(value)] = value
            return


def restate(rpm: bytes, keep: tuple[int, ...] = ()) -> bytes:
    """`rpm` with every digest and size rpm checks made right again after an edit of its
    main header or gzip payload (what a vendor does so that `rpmkeys -K` says digests OK),
    but the main header's tags in `keep` (5092, 5097: the payload digests) left as they are."""
    data = bytearray(rpm)
    _, end = _header(rpm, 96)
    main = end + (8 - end % 8) % 8
    count, size = struct.unpack(">II", rpm[main + 8 : main + 16])
    payload = main + 16 + 16 * count + size
    expanded = gzip.decompress(rpm[payload:])
    for tag, value in ((5092, rpm[payload:]), (5097, expanded)):
        if tag not in keep:
            _set(data, main, tag, hashlib.sha256(value).hexdigest().encode())
    header, whole = bytes(data[main:payload]), bytes(data[main:])
    _set(data, 96, 269, hashlib.sha1(header).hexdigest().encode())  # noqa: S324 - rpm's
    _set(data, 96, 273, hashlib.sha256(header).hexdigest().encode())
    _set(data, 96, 1004, hashlib.md5(whole).digest())  # noqa: S324 - rpm's
    _set(data, 96, 1000, struct.pack(">I", len(whole)))
    _set(data, 96, 1007, struct.pack(">I", len(expanded)))
    return bytes(data)

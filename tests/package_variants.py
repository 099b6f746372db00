"""Variants of real packages, made with the tools that make them (dpkg-deb, zipfile, tarfile).

Each function takes a real package (a Debian .deb, a wheel, jar or ZIP, a gzip-compressed TAR such
as an sdist or an npm tarball) and writes one variant of it:

- `repack_times`: the same members repacked with other times only (dpkg-deb with another
  SOURCE_DATE_EPOCH; zipfile or tarfile keeping order and every other field), optionally the
  jars inside a .deb too;
- `flip_code`: one byte changed in the code section of an executable member (a signed PE
  first, else any ELF or PE), found at any depth (`x.deb!data.tar.xz!./usr/lib/...so`),
  repacked keeping times; with no ELF or PE member, one byte of a Java class inside a jar inside
  a .deb, else of the first member;
- `hide_bytes`: the same package with bytes nothing accounts for between two members;
- `strip_signatures`, `replace_in_deb`, `rebuild_deb`: the package with its signed PE files
  unsigned, with one file replaced, or rebuilt by dpkg-deb (another compressor).

Used by tests/test_archive_real.py on the small packages under tests/fixtures/real-packages and
by scripts/real_packages.py on a fetched cache of larger ones.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lief

FIXTURES = Path(__file__).parent / "fixtures" / "real-packages"
SHIFT = 86_400 * 400  # how far back the repacked times go
ZIPS = (".whl", ".jar", ".zip", ".apk", ".egg")
TARS = (".tar.gz", ".tgz")


@dataclass(frozen=True)
class Flip:
    """Where a changed byte is: the report path of its member and the region expected there."""

    member: str
    region: str | None


def kind(path: Path) -> str:
    """`deb`, `zip` or `tar` (gzip-compressed) from the file name."""
    name = path.name
    if name.endswith(".deb"):
        return "deb"
    if name.endswith(ZIPS):
        return "zip"
    if name.endswith(TARS):
        return "tar"
    raise ValueError(f"{name}: not a .deb, ZIP or .tar.gz")


def code_region(data: bytes) -> tuple[int, str] | None:
    """A file offset in the middle of the code of an ELF or PE file, and its report region."""
    lief.logging.disable()
    if data[:4] == b"\x7fELF":
        elf = lief.ELF.parse(list(data))
        text = elf.get_section(".text") if elf else None
        if text is None or text.size == 0:
            return None
        return int(text.offset) + int(text.size) // 2, "elf.section[.text]"
    if data[:2] == b"MZ":
        pe = lief.PE.parse(list(data))
        if pe is None:
            return None
        for s in pe.sections:
            if s.has_characteristic(lief.PE.Section.CHARACTERISTICS.MEM_EXECUTE) and s.size:
                size = min(int(s.size), int(s.virtual_size) or int(s.size))
                return int(s.offset) + size // 2, f"pe.section[{s.name}]"
    return None


def signed_pe(data: bytes) -> bool:
    """Whether `data` is a PE whose certificate table (Authenticode) is not empty."""
    if data[:2] != b"MZ" or len(data) < 0x40:
        return False
    header = int.from_bytes(data[0x3C:0x40], "little")
    if data[header : header + 4] != b"PE\0\0" or len(data) < header + 24 + 2:
        return False
    pe32plus = data[header + 24 : header + 26] == b"\x0b\x02"
    security = header + 24 + (112 if pe32plus else 96) + 4 * 8
    return int.from_bytes(data[security + 4 : security + 8], "little") > 0


def strip_authenticode(pe: bytes) -> bytes:
    """A PE without its certificate table (every WIN_CERTIFICATE): its unsigned build."""
    header = int.from_bytes(pe[0x3C:0x40], "little")
    pe32plus = pe[header + 24 : header + 26] == b"\x0b\x02"
    security = header + 24 + (112 if pe32plus else 96) + 4 * 8
    offset = int.from_bytes(pe[security : security + 4], "little")
    out = bytearray(pe[:offset])
    out[security : security + 8] = bytes(8)
    return bytes(out)


def _flip_data(data: bytes) -> tuple[bytes, str | None]:
    """`data` with one byte changed: in its code if it is an ELF or PE file, else the middle."""
    found = code_region(data)
    at, region = found if found else (len(data) // 2, None)
    out = bytearray(data)
    out[at] ^= 0x01
    return bytes(out), region


# --- .deb: dpkg-deb -R and -b, the tool that makes Debian packages -------------------------------


def _ar_members(data: bytes) -> list[tuple[str, int, int, int]]:
    """(name, header offset, data offset, size) of each member of an ar archive."""
    out, pos = [], 8
    while pos + 60 <= len(data):
        name = data[pos : pos + 16].decode().strip().rstrip("/")
        size = int(data[pos + 48 : pos + 58].decode().strip())
        out.append((name, pos, pos + 60, size))
        pos += 60 + size + (size & 1)
    return out


def _deb_compression(data: bytes) -> str:
    name = next(m[0] for m in _ar_members(data) if m[0].startswith("data.tar"))
    suffix = name.rsplit(".", 1)[-1]
    return {"tar": "none", "gz": "gzip", "xz": "xz", "zst": "zstd", "bz2": "bzip2"}[suffix]


def _deb_mtime(data: bytes) -> int:
    return int(data[8 + 16 : 8 + 28].decode().strip())


def _dpkg_build(tree: Path, out: Path, epoch: int, compression: str) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch)}
    out.parent.mkdir(parents=True, exist_ok=True)
    # as root, dpkg-deb -R kept each file's owner; a user's unpacking made them the user's
    owners = [] if os.geteuid() == 0 else ["--root-owner-group"]
    subprocess.run(["dpkg-deb", *owners, f"-Z{compression}", "-b", str(tree), str(out)],
                   env=env, check=True, capture_output=True)  # fmt: skip


def _dpkg_tree(src: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    tree = work / f"{src.name}.tree"
    subprocess.run(["dpkg-deb", "-R", str(src), str(tree)], check=True, capture_output=True)
    return tree


def _shipped(tree: Path) -> list[Path]:
    """The regular files a package unpacked by `dpkg-deb -R` installs (not DEBIAN/, no links)."""
    found = (p for p in tree.rglob("*") if "DEBIAN" not in p.relative_to(tree).parts)
    return sorted(p for p in found if p.is_file() and not p.is_symlink())


def rebuild_deb(src: Path, out: Path, work: Path, *, compression: str | None = None) -> Path:
    """`src` unpacked and built again by dpkg-deb at its own time (optionally recompressed)."""
    data = src.read_bytes()
    tree = _dpkg_tree(src, work)
    _dpkg_build(tree, out, _deb_mtime(data), compression or _deb_compression(data))
    return out


def _update_md5sums(tree: Path, path: Path) -> None:
    """The line of `path` in DEBIAN/md5sums made to list its digest now (as dh_md5sums)."""
    listing = tree / "DEBIAN" / "md5sums"
    name = path.relative_to(tree).as_posix()
    line = f"{hashlib.md5(path.read_bytes()).hexdigest()}  {name}"  # noqa: S324 - Debian's
    lines = [line if ln.endswith(f"  {name}") else ln for ln in listing.read_text().splitlines()]
    stamp = listing.stat().st_mtime
    listing.write_text("\n".join(lines) + "\n")
    os.utime(listing, (stamp, stamp))


def replace_in_deb(src: Path, out: Path, work: Path, member: str, data: bytes, *,
                   md5sums: bool = False) -> Path:  # fmt: skip
    """`src` built again by dpkg-deb at its own time with file `member` (`./usr/...`) = `data`.

    With `md5sums`, its line in DEBIAN/md5sums is updated as dh_md5sums would write it.
    """
    deb = src.read_bytes()
    tree = _dpkg_tree(src, work)
    name = member.removeprefix("./")
    target = tree / name
    mtime = target.stat().st_mtime
    target.write_bytes(data)
    os.utime(target, (mtime, mtime))
    if md5sums:
        _update_md5sums(tree, target)
    _dpkg_build(tree, out, _deb_mtime(deb), _deb_compression(deb))
    return out


# --- ZIP: zipfile, which makes wheels, keeping order and every field but the one changed ---------


class _Info(zipfile.ZipInfo):
    """A ZipInfo that keeps the UTF-8 name flag, which zipfile sets only for non-ASCII names."""

    __slots__ = ("utf8",)

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's private hook
        name, flags = super()._encodeFilenameFlags()  # type: ignore[misc]
        return name, flags | (0x800 if self.utf8 else 0)


def _copy_info(info: zipfile.ZipInfo, date: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    new = _Info(info.filename, date)
    for field in ("compress_type", "comment", "extra", "create_system", "create_version",
                  "extract_version", "internal_attr", "external_attr"):  # fmt: skip
        setattr(new, field, getattr(info, field))
    new.utf8 = bool(info.flag_bits & 0x800)  # jar tools set it on every entry
    return new


class _Unseekable(io.RawIOBase):
    """A file zipfile cannot seek in, so that it writes data descriptors as `jar` does."""

    def __init__(self, sink: io.BufferedWriter) -> None:
        self.sink = sink

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return self.sink.write(data)  # type: ignore[arg-type]


def _rezip(src: Path, out: Path, *, shift: int = 0, change: str | None = None,
           junk_after: str | None = None, strip: set[str] | None = None) -> None:  # fmt: skip
    with zipfile.ZipFile(src) as zin, out.open("wb") as sink:
        infos = zin.infolist()
        descriptors = bool(infos and infos[0].flag_bits & 0x08)
        target = _Unseekable(sink) if descriptors else sink
        with zipfile.ZipFile(target, "w") as zout:  # type: ignore[arg-type]
            for info in infos:
                date = info.date_time
                if shift:
                    stamp = time.mktime((*date, 0, 0, -1)) - shift
                    date = time.localtime(stamp)[:6]
                data = zin.read(info)
                if info.filename == change:
                    data = _flip_data(data)[0]
                if strip and info.filename in strip:
                    data = strip_authenticode(data)
                zout.writestr(_copy_info(info, date), data)
                if info.filename == junk_after:
                    assert zout.fp is not None
                    zout.fp.write(b"hidden bytes between two members\n")
                    zout.start_dir = zout.fp.tell()
            zout.comment = zin.comment


# --- TAR.GZ: tarfile and gzip, which make sdists --------------------------------------------------


def _gzip_mtime(data: bytes) -> int:
    return int.from_bytes(data[4:8], "little")


def _tar_headers(tar: bytes) -> list[int]:
    """Offsets of every header block (pax and GNU ones too) of a TAR, up to its end marker."""
    out, pos = [], 0
    while pos + 512 <= len(tar) and tar[pos : pos + 512] != bytes(512):
        out.append(pos)
        size = int(tar[pos + 124 : pos + 136].strip(b" \0") or b"0", 8)
        pos += 512 + -(-size // 512) * 512
    return out


def _zero_devices(tar: bytes) -> bytes:
    """Device numbers written as octal zeros in every header (older Python's tarfile did)."""
    out = bytearray(tar)
    for pos in _tar_headers(tar):
        if out[pos + 329 : pos + 345] == bytes(16):
            out[pos + 329 : pos + 345] = b"0000000\x000000000\x00"
            out[pos + 148 : pos + 156] = b" " * 8
            out[pos + 148 : pos + 156] = b"%06o\x00 " % sum(out[pos : pos + 512])
    return bytes(out)


def _gzip(tar: bytes, like: bytes, shift: int) -> bytes:
    """`tar` compressed by Python's gzip as `like` was: its header name, its time less `shift`."""
    mtime = _gzip_mtime(like) - shift if _gzip_mtime(like) else 0
    name = like[10 : like.index(b"\0", 10)].decode("latin-1") + ".gz" if like[3] & 8 else ""
    buf = io.BytesIO()
    with gzip.GzipFile(name, "wb", 9, buf, mtime) as gz:
        gz.write(tar)
    return buf.getvalue()


def _retar(src: Path, out: Path, *, shift: int = 0, change: str | None = None,
           junk: bool = False) -> None:  # fmt: skip
    raw = src.read_bytes()
    plain = gzip.decompress(raw)
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r") as tin:
        fmt = tarfile.PAX_FORMAT if any(m.pax_headers for m in tin.getmembers()) else tin.format
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tout:
            for member in tin.getmembers():
                body = tin.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
                if member.name == change and body is not None:
                    body = _flip_data(body)[0]
                if member.mtime >= shift:  # 0 (flit's PKG-INFO) stays: a negative time is pax
                    member.mtime -= shift
                    if "mtime" in member.pax_headers:
                        pax = float(member.pax_headers["mtime"]) - shift
                        member.pax_headers["mtime"] = str(pax)
                tout.addfile(member, io.BytesIO(body) if body is not None else None)
    tar = buf.getvalue()
    if plain[329:337] == b"0000000\0":
        tar = _zero_devices(tar)
    if junk:  # a block of data no header claims, after the first file's data
        with tarfile.open(fileobj=io.BytesIO(tar)) as t:
            first = next(m for m in t.getmembers() if m.isfile())
            end = first.offset_data + -(-first.size // 512) * 512
        tar = tar[:end] + b"hidden bytes".ljust(512, b"\0") + tar[end:]
    out.write_bytes(_gzip(tar, raw, shift))


# --- the three variants ---------------------------------------------------------------------------


def repack_times(src: Path, out: Path, work: Path, *, jars: bool = False,
                 md5sums: bool = False) -> Path:  # fmt: skip
    """`src` repacked by its kind's tool with every time earlier by SHIFT seconds, nothing else.

    For a .deb, with `jars` each jar in it is repacked so too (a Java build at another time),
    and with `md5sums` DEBIAN/md5sums then lists the new jars' digests, as dh_md5sums would.
    """
    k = kind(src)
    if k == "deb":
        data = src.read_bytes()
        tree = _dpkg_tree(src, work)
        for jar in (p for p in _shipped(tree) if jars and p.suffix == ".jar"):
            mtime = jar.stat().st_mtime
            _rezip(jar, jar.with_name(jar.name + ".new"), shift=SHIFT)
            jar.with_name(jar.name + ".new").replace(jar)
            os.utime(jar, (mtime, mtime))
            if md5sums:
                _update_md5sums(tree, jar)
        # dpkg-deb clamps every file time newer than SOURCE_DATE_EPOCH to it
        _dpkg_build(tree, out, _deb_mtime(data) - SHIFT, _deb_compression(data))
    elif k == "zip":
        _rezip(src, out, shift=SHIFT)
    else:
        _retar(src, out, shift=SHIFT)
    return out


def _pick(names: list[str], read: Callable[[str], bytes]) -> str:
    """The member to change: the first (signed, if any) ELF or PE file, else a Java class."""
    code = [n for n in names if code_region(read(n)) is not None]
    if code:
        return next((n for n in code if signed_pe(read(n))), code[0])  # a signed one if any
    return next((n for n in names if n.endswith(".class")), names[0])


def flip_code(src: Path, out: Path, work: Path) -> Flip:
    """`src` with one byte of its first ELF/PE member's code changed, repacked keeping times."""
    k = kind(src)
    if k == "deb":
        data = src.read_bytes()
        tree = _dpkg_tree(src, work)
        files = _shipped(tree)
        code = [p for p in files if code_region(p.read_bytes())]
        code.sort(key=lambda p: not signed_pe(p.read_bytes()))  # a signed one first, if any
        target = (code or [p for p in files if p.suffix == ".jar"] or files)[0]
        data_member = next(m[0] for m in _ar_members(data) if m[0].startswith("data."))
        member = f"{src.name}!{data_member}!./{target.relative_to(tree).as_posix()}"
        mtime = target.stat().st_mtime
        if code or target.suffix != ".jar":
            body, region = _flip_data(target.read_bytes())
            target.write_bytes(body)
        else:  # a jar: change a class inside it, three layers down
            with zipfile.ZipFile(target) as z:
                inner = _pick([i.filename for i in z.infolist() if not i.is_dir()], z.read)
            flipped = target.with_name(target.name + ".new")
            _rezip(target, flipped, change=inner)
            flipped.replace(target)
            member, region = f"{member}!{inner}", None
        os.utime(target, (mtime, mtime))
        _dpkg_build(tree, out, _deb_mtime(data), _deb_compression(data))
        return Flip(member, region)
    if k == "zip":
        with zipfile.ZipFile(src) as z:
            names = [i.filename for i in z.infolist() if not i.is_dir()]
            name = _pick(names, z.read)
            region = _flip_data(z.read(name))[1]
        _rezip(src, out, change=name)
        return Flip(f"{src.name}!{name}", region)
    with tarfile.open(src, "r:gz") as t:
        members = [m for m in t.getmembers() if m.isfile()]
        read = {m.name: m for m in members}
        name = _pick([m.name for m in members], lambda n: t.extractfile(read[n]).read())  # type: ignore[union-attr]
        region = _flip_data(t.extractfile(read[name]).read())[1]  # type: ignore[union-attr]
    _retar(src, out, change=name)
    return Flip(f"{src.name}!{name}", region)


def hide_bytes(src: Path, out: Path, work: Path) -> str:
    """`src` with bytes between two members that no header accounts for; returns the layer."""
    k = kind(src)
    if k == "deb":
        data = src.read_bytes()
        _, _, start, size = _ar_members(data)[0]
        end = start + size + (size & 1)
        out.write_bytes(data[:end] + b"hidden\n\n" + data[end:])
        return src.name
    if k == "zip":
        with zipfile.ZipFile(src) as z:
            first = z.infolist()[0].filename
        _rezip(src, out, junk_after=first)
        return src.name
    _retar(src, out, junk=True)
    return src.name


def strip_signatures(src: Path, out: Path, work: Path) -> int:
    """`src` repacked keeping times with every signed PE member unsigned; how many there were.

    Nothing else changes (a wheel's RECORD and a .deb's md5sums keep the signed files' digests),
    so `sign-check out src` may find the package signature-only.
    """
    k = kind(src)
    if k == "zip":
        with zipfile.ZipFile(src) as z:
            signed = [i.filename for i in z.infolist() if signed_pe(z.read(i))]
        _rezip(src, out, strip=set(signed))
        return len(signed)
    if k != "deb":
        return 0
    data = src.read_bytes()
    tree = _dpkg_tree(src, work)
    shipped = (p for p in tree.rglob("*") if "DEBIAN" not in p.relative_to(tree).parts)
    signed = [
        p for p in shipped if p.is_file() and not p.is_symlink() and signed_pe(p.read_bytes())
    ]
    for path in signed:
        mtime = path.stat().st_mtime
        path.write_bytes(strip_authenticode(path.read_bytes()))
        os.utime(path, (mtime, mtime))
    _dpkg_build(tree, out, _deb_mtime(data), _deb_compression(data))
    return len(signed)

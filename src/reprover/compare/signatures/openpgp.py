"""Pinned OpenPGP public keys, and one detached signature checked against them by gpgv.

Owns: `PinnedKeys`, a context manager: a throwaway GnuPG home (never the user's) into which
gpg imports the pinned key files (checking every self-signature and dropping what does not
verify), the keys' primary fingerprints and user ids, and `verify`: gpgv checks one detached
signature over streamed bytes against that keyring alone. gpgv's machine-readable status
(`--status-fd`) must report exactly one signature, good and valid, whose primary key
fingerprint is a pinned key's.
Does not own: the signature packet's framing (`openpgp_packet`, checked first), X.509 pins
(`trust`), or which bytes a signature covers (the caller: `archives.rpmsig`).

Why gpgv: it is GnuPG's verify-only tool, made for exactly this (a keyring of trusted keys, a
signature, data); it has no trust database, no agent and no key servers, so no network and no
state of the user's. Its status lines name the full fingerprint of the key that made a good
signature (VALIDSIG), which `rpmkeys --checksig` does not (it prints a 32-bit key id), and a
signature is only accepted by fingerprint, never by key id (keys are compared by their key
material; a fingerprint is a hash of it).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from reprover.compare.signatures.openpgp_packet import read_signature
from reprover.compare.signatures.trust import is_openpgp, load_trusted
from reprover.errors import InconclusiveError, InputError, ToolMissingError, VerificationError

TIMEOUT = 600  # seconds for one tool run (gpgv hashes a whole payload for legacy signatures)
BAD_STATUS = {
    "BADSIG": "does not verify (the signed bytes differ)",
    "EXPKEYSIG": "was made by an expired key",
    "REVKEYSIG": "was made by a revoked key",
    "EXPSIG": "has expired",
    "NO_PUBKEY": "was made by a key that is not pinned",
    "ERRSIG": "cannot be checked",
}


@dataclass(frozen=True)
class OpenPgpSigner:
    """One verified signature: the pinned key that made it, and how."""

    fingerprint: str  # the primary key's
    signing_key: str  # the (sub)key that signed
    user_id: str
    algorithm: str
    hash: str
    created: str  # signature creation date as gpgv reports it


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(f"{name} is not installed (GnuPG)", hint="apt-get install gnupg")
    return path


def _read(source: Path | bytes, index: int) -> tuple[bytes, str]:
    if isinstance(source, bytes):
        return source, f"pinned key #{index}"
    try:
        return source.read_bytes(), str(source)
    except OSError as exc:
        raise InputError(f"cannot read pinned key {source}: {exc.strerror}") from exc


def _colons(out: str, kind: str) -> list[list[str]]:
    return [line.split(":") for line in out.splitlines() if line.startswith(kind + ":")]


class PinnedKeys:
    """The OpenPGP keys among pinned sources, imported into a throwaway GnuPG home.

    Raises (on entering):
        InputError: a source is neither an X.509 certificate nor an OpenPGP public key, or
            holds a secret key.
        VerificationError: no OpenPGP key is pinned (an RPM signature names only a key id).
        ToolMissingError: gpg or gpgv is not installed.
    """

    def __init__(self, sources: Sequence[Path | bytes]) -> None:
        self.sources = sources
        self.keys: dict[str, str] = {}  # primary fingerprint -> first user id
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> PinnedKeys:
        keys = []
        for index, source in enumerate(self.sources):
            data, name = _read(source, index)
            if is_openpgp(data):
                keys.append((data, name))
            else:
                load_trusted((data,))  # an X.509 certificate (ignored here), or bad input
        if not keys:
            raise VerificationError(
                "no OpenPGP public key is pinned (an RPM signature names only a key id): pin "
                "the signer's OpenPGP public key with --trusted KEY.asc or [signature] trusted"
            )
        gpg = _tool("gpg")
        _tool("gpgv")
        self._tmp = tempfile.TemporaryDirectory(prefix="reprover-gpg-")
        try:
            self._load(gpg, Path(self._tmp.name), keys)
        except BaseException:
            self._tmp.cleanup()
            raise
        return self

    def _load(self, gpg: str, home: Path, keys: list[tuple[bytes, str]]) -> None:
        """Import `keys` into `home`; note each primary fingerprint and its first user id."""
        home.chmod(0o700)
        for data, name in keys:
            self._import(gpg, home, data, name)
        listing = self._gpg(gpg, home, "--with-colons", "--list-keys")
        primary, last = False, None
        for fields in (line.split(":") for line in listing.splitlines()):
            if fields[0] in ("pub", "sub"):
                primary, last = fields[0] == "pub", None
            elif fields[0] == "fpr" and primary and last is None:
                last = fields[9]
                self.keys[last] = ""
            elif fields[0] == "uid" and last is not None and not self.keys[last]:
                self.keys[last] = fields[9]

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    @staticmethod
    def _gpg(gpg: str, home: Path, *args: str, data: bytes | None = None) -> str:
        argv = [gpg, "--homedir", str(home), "--batch", "--no-autostart", "--no-tty",
                "--no-options", *args]  # fmt: skip
        done = subprocess.run(argv, input=data, capture_output=True, timeout=TIMEOUT,
                              check=False, env={"LC_ALL": "C"})  # fmt: skip
        if done.returncode != 0:
            raise InputError(f"gpg {args[-1]} failed: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode("utf-8", "replace")

    def _import(self, gpg: str, home: Path, data: bytes, name: str) -> None:
        shown = subprocess.run(
            [gpg, "--homedir", str(home), "--batch", "--no-autostart", "--no-options",
             "--with-colons", "--show-keys"],
            input=data, capture_output=True, timeout=TIMEOUT, check=False, env={"LC_ALL": "C"},
        )  # fmt: skip
        out = shown.stdout.decode("utf-8", "replace")
        if _colons(out, "sec") or _colons(out, "ssb"):
            raise InputError(f"{name}: an OpenPGP secret key; pin the public key only",
                             hint="gpg --armor --export KEYID > signer.asc")  # fmt: skip
        if shown.returncode != 0 or not _colons(out, "pub"):
            raise InputError(f"{name}: not an OpenPGP public key",
                             hint="pin the signer's key as exported by gpg --export "
                             "(armored or binary)")  # fmt: skip
        self._gpg(gpg, home, "--import", data=data)

    def verify(self, signature: bytes, data: Iterable[bytes], what: str) -> OpenPgpSigner:
        """Check `signature` (one packet, framing checked) over the streamed `data`.

        Raises:
            VerificationError: bad framing, or gpgv does not report exactly one good, valid
                signature by a pinned key; the message says which.
            InconclusiveError: gpgv timed out.
        """
        packet = read_signature(signature, what)
        if self._tmp is None:
            raise RuntimeError("enter PinnedKeys before verifying")
        home = Path(self._tmp.name)
        sig = home / "signature.sig"
        sig.write_bytes(signature)
        status = self._gpgv(home, sig, data)
        lines = [ln.split(" ")[1:] for ln in status.splitlines() if ln.startswith("[GNUPG:] ")]
        words = [ln[0] for ln in lines if ln]
        for word, why in BAD_STATUS.items():
            if word in words:
                raise VerificationError(f"{what}: the signature {why}" + (
                    f" (key id {packet.issuer})" if packet.issuer else ""))  # fmt: skip
        valid = [ln for ln in lines if ln and ln[0] == "VALIDSIG"]
        if words.count("NEWSIG") != 1 or words.count("GOODSIG") != 1 or len(valid) != 1:
            raise VerificationError(f"{what}: gpgv did not report exactly one good signature")
        fields = valid[0]
        signing = fields[1]
        primary = fields[10] if len(fields) > 10 else signing
        if primary not in self.keys:
            raise VerificationError(f"{what}: made by key {primary}, which is not pinned")
        if fields[9] != "00":
            raise VerificationError(f"{what}: not a binary-document signature")
        if packet.fingerprint is not None and packet.fingerprint != signing:
            raise VerificationError(f"{what}: the issuer fingerprint names another key")
        return OpenPgpSigner(primary, signing, self.keys[primary], packet.algorithm,
                             packet.hash, fields[2])  # fmt: skip

    @staticmethod
    def _gpgv(home: Path, sig: Path, data: Iterable[bytes]) -> str:
        argv = [_tool("gpgv"), "--homedir", str(home), "--keyring", str(home / "pubring.kbx"),
                "--status-fd", "1", str(sig), "-"]  # fmt: skip
        with tempfile.TemporaryFile() as out:
            proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out,
                                    stderr=subprocess.DEVNULL, env={"LC_ALL": "C"})  # fmt: skip
            pipe = proc.stdin
            if pipe is None:
                raise RuntimeError("gpgv has no standard input")
            with contextlib.suppress(BrokenPipeError):  # gpgv stopped early: its status says why
                for block in data:
                    pipe.write(block)
            with contextlib.suppress(BrokenPipeError):
                pipe.close()
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                proc.wait()
                raise InconclusiveError(f"gpgv did not finish within {TIMEOUT} s") from exc
            out.seek(0)
            return out.read().decode("utf-8", "replace")

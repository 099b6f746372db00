"""Which archive differences a signature explains, and the proofs that it does, per format.

Owns: the `Prover` protocol and `PROVERS`, one prover per archive format that carries a
signature of its own (MSI and CAB Authenticode, RPM OpenPGP, JAR signatures). A prover names
the differences signing makes (`role`: the signature itself, or what signing necessarily
changes beside it, such as a compound file's sector layout) and proves, from the bytes, that the
released archive is the rebuilt one plus a valid signature (`prove`). The driver allows those
differences under the `signature` rule only when every other difference is already allowed and
the proof holds. The proof is told what the comparison decided (`Given`): the members whose
content differs but that the driver accepted on their own (a DLL proven signature-only,
signed before it was packed), which the MSI and CAB proofs support (the signature then covers
the released bytes) and the JAR and RPM proofs refuse, saying so; and the effects of signing
left to the proof (an MSI's sector layout must then be the signer's, `msilayout`, unless
`archive.order` allowed it).
Does not own: the proofs' details (one module per format: `msisig`, `cabsig`, `rpmsig`,
`jarsig`), comparing (`driver`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from reprover.compare.archives.jarzip import MANIFEST, REWRITTEN, signing_related
from reprover.compare.archives.listing import Listing, quote
from reprover.compare.archives.ole import EXTENDED as MSI_EXTENDED
from reprover.compare.archives.ole import SIGNATURE as MSI_SIGNATURE
from reprover.errors import VerificationError

if TYPE_CHECKING:
    from reprover.compare.signatures.pkcs7 import SignerDetails

# The proofs (and cryptography under them) are imported when a proof runs: every archive
# comparison reads `PROVERS`, and most never prove a signature (a .deb, a tarball).


class Role(Enum):
    """What a difference is to a signature."""

    SIGNATURE = "signature"  # the signature's own bytes or entries: its presence triggers a proof
    EFFECT = "effect"  # what signing necessarily changes beside the signature (layout, manifest)


@dataclass(frozen=True)
class Given:
    """What the archive comparison decided before a signature proof runs."""

    # raw names of members whose content differs from the rebuild's but that the driver
    # accepted on their own (verdict `signature-only`, or `equivalent` by their own rules)
    accepted: frozenset[str] = frozenset()
    # the root differences (regions) left to the proof as effects of signing: those another
    # rule already allowed are not here, so a proof need not explain them
    effects: frozenset[str] = frozenset()


class Prover(Protocol):
    """The signature of one archive format."""

    label: str  # as reports name it: "MSI Authenticode signature"
    # The signer writes the container anew from its members (osslsigncode rewrites an MSI's
    # compound file), so bytes the rebuilt file holds outside every member (slack, free
    # sectors: hidden in the rebuild only) are not carried into the release; the proof is
    # over members, and the released file's own bytes must all be accounted for.
    rewrites_container: bool

    def role(self, region: str, listing: Listing) -> Role | None:
        """What the root difference `region` of `listing` (the released archive) is to signing."""

    def member_role(self, name: str) -> Role | None:
        """What a member named `name` whose content differs, or that only one side has, is."""

    def prove(
        self,
        files: tuple[Path, Path],
        listings: tuple[Listing, Listing],
        trusted: tuple[Path, ...],
        given: Given,
    ) -> tuple[SignerDetails, ...]:
        """Prove released = rebuilt + this signature; return every signer, outermost first.

        `files` and `listings` are (released, rebuilt), open for the whole call. `given`
        names the members whose content may differ (`accepted`; every other member must be
        the rebuild's) and the effects of signing the proof must explain (`effects`).

        Raises:
            VerificationError: any part of the proof fails; the message says which.
            InputError: a pinned certificate or key cannot be read.
        """


class MsiProver:
    """MSI Authenticode: the `\\x05DigitalSignature` stream (and `\\x05MsiDigitalSignatureEx`
    with the extended signature), and the sector layout they move."""

    label = "MSI Authenticode signature"
    rewrites_container = True

    def role(self, region: str, listing: Listing) -> Role | None:
        """The signature streams' own entries, or the layout and order the new streams change,
        or the compound file's version when the released one is a standard version 3 or 4
        (osslsigncode writes a large MSI anew with 4096-byte sectors, version 4)."""
        if region in (f"{listing.prefix}[{quote(n)}]" for n in (MSI_SIGNATURE, MSI_EXTENDED)):
            return Role.SIGNATURE
        if region in ("ole.layout", "ole.order"):
            return Role.EFFECT
        version = listing.fields.get("ole.header.version")
        if region == "ole.header.version" and version is not None:
            return Role.EFFECT if version.value in ((0x3E, 3), (0x3E, 4)) else None
        return None

    def member_role(self, name: str) -> Role | None:
        """Only the signature streams."""
        return Role.SIGNATURE if name in (MSI_SIGNATURE, MSI_EXTENDED) else None

    def prove(
        self,
        files: tuple[Path, Path],
        listings: tuple[Listing, Listing],
        trusted: tuple[Path, ...],
        given: Given,
    ) -> tuple[SignerDetails, ...]:
        """See `msisig.prove_msi_signature_only`: the accepted streams may differ; the sector
        layout must be osslsigncode's (`msilayout`) unless `archive.order` allowed it.

        Raises:
            VerificationError: the proof fails.
            InputError: a pinned certificate cannot be read.
        """
        from reprover.compare.archives.msisig import prove_msi_signature_only  # noqa: PLC0415

        layout = bool(given.effects & {"ole.layout", "ole.order"})
        return prove_msi_signature_only(
            files, listings, trusted, given.accepted, signer_layout=layout
        )


class CabProver:
    """Cabinet Authenticode: the signature reserve and the signature, and the reserve flag."""

    label = "CAB Authenticode signature"
    rewrites_container = False
    SIGNATURE_FIELDS = ("cab.signature.reserve", "cab.signature")

    def role(self, region: str, listing: Listing) -> Role | None:
        """The reserve and the signature it points to; the header flags signing sets.

        Everything else signing moves (cbCabinet, coffFiles, folder offsets) is no field
        of its own or a consequence; the proof checks each byte of them.
        """
        del listing
        if region in self.SIGNATURE_FIELDS:
            return Role.SIGNATURE
        return Role.EFFECT if region == "cab.header.flags" else None

    def member_role(self, name: str) -> Role | None:
        """None: signing a cabinet adds or changes no member."""
        del name
        return None

    def prove(
        self,
        files: tuple[Path, Path],
        listings: tuple[Listing, Listing],
        trusted: tuple[Path, ...],
        given: Given,
    ) -> tuple[SignerDetails, ...]:
        """See `cabsig.prove_cab_signature_only`, which takes the accepted members.

        Raises:
            VerificationError: the proof fails.
            InputError: a pinned certificate cannot be read.
        """
        from reprover.compare.archives.cabsig import prove_cab_signature_only  # noqa: PLC0415

        return prove_cab_signature_only(files, listings, trusted, given.accepted)


class RpmProver:
    """RPM: OpenPGP signature tags in the signature header (`rpm.signature.rsa` and the like).

    The reserved space and region trailer they change are digests to the driver (consequences,
    never roles); the proof checks them byte for byte.
    """

    label = "RPM OpenPGP header signature"
    rewrites_container = False
    regions = frozenset(f"rpm.signature.{n}" for n in ("dsa", "rsa", "pgp", "gpg", "pgp5"))

    def role(self, region: str, listing: Listing) -> Role | None:
        """The signature tags only."""
        del listing
        return Role.SIGNATURE if region in self.regions else None

    def member_role(self, name: str) -> Role | None:
        """None: signing an RPM never changes its payload."""
        del name
        return None

    def prove(
        self,
        files: tuple[Path, Path],
        listings: tuple[Listing, Listing],
        trusted: tuple[Path, ...],
        given: Given,
    ) -> tuple[SignerDetails, ...]:
        """See `rpmsig.prove_rpm_signature_only` (it reads the files; the listings are unused).

        Raises:
            VerificationError: the proof fails, no OpenPGP key is pinned, or a member's
                content differs.
            InputError: a pinned file is neither a certificate nor an OpenPGP public key.
            ToolMissingError: gpg or gpgv is missing.
        """
        del listings
        refuse_accepted(self.label, given.accepted)
        from reprover.compare.archives.rpmsig import prove_rpm_signature_only  # noqa: PLC0415

        return prove_rpm_signature_only(files, trusted)


class JarProver:
    """JAR signatures: `META-INF/*.SF` and their blocks, and what jarsigner changes beside them.

    Roles go to every name Java reads as a signature file, whatever its case, so a misspelt
    one reaches the proof and is refused there with its reason.
    """

    label = "JAR signature"
    rewrites_container = False
    container = ("zip.order", "zip.comment")  # jarsigner moves META-INF/ first, drops the comment

    def role(self, region: str, listing: Listing) -> Role | None:
        """A signature file added; the manifest's content and entry fields; order, comment."""
        if region in self.container:
            return Role.EFFECT
        head = f"{listing.prefix}["
        end = region.find("]", len(head))
        if not region.startswith(head) or end < 0:
            return None
        name, field = region[len(head) : end], region[end + 1 :]
        if field in REWRITTEN:
            return Role.EFFECT  # jarsigner rewrites every entry; `jarsig` checks which bits
        if not signing_related(name):
            return None
        if field in (".type", ".target") or field.endswith(".special"):
            return None  # never what signing changes
        return Role.EFFECT if name == quote(MANIFEST) or field else Role.SIGNATURE

    def member_role(self, name: str) -> Role | None:
        """The manifest (effect) and every signature file (signature)."""
        if name == MANIFEST:
            return Role.EFFECT
        return Role.SIGNATURE if signing_related(name) else None

    def prove(
        self,
        files: tuple[Path, Path],
        listings: tuple[Listing, Listing],
        trusted: tuple[Path, ...],
        given: Given,
    ) -> tuple[SignerDetails, ...]:
        """See `jarsig.prove_jar_signature_only`; no member may differ.

        The JAR proof runs first: it already refuses a member that differs, naming the
        manifest digest that fails (each must match the rebuilt and the released content).

        Raises:
            VerificationError: the proof fails, or a member's content differs.
            InputError: a pinned certificate cannot be read.
        """
        from reprover.compare.archives.jarsig import prove_jar_signature_only  # noqa: PLC0415

        signers = prove_jar_signature_only(files, listings, trusted)
        refuse_accepted(self.label, given.accepted)
        return signers


def refuse_accepted(label: str, accepted: frozenset[str]) -> None:
    """Refuse members whose content differs: a proof that covers only the rebuild's members.

    Raises:
        VerificationError: `accepted` names a member.
    """
    if accepted:
        names = ", ".join(repr(quote(n)) for n in sorted(accepted))
        raise VerificationError(
            f"{names} differ(s) from the rebuild's (accepted on its own), but the {label} "
            "proof covers only members equal to the rebuild's: signing a container of signed "
            "members is not proven for this format"
        )


PROVERS: dict[str, Prover] = {
    "ole": MsiProver(),
    "cab": CabProver(),
    "rpm": RpmProver(),
    "zip": JarProver(),
}

"""What the Mach-O proof proved, per slice and for the whole file, as report lines.

Owns: `SliceProof` (one slice: what its signature asserts and who signed it) and
`MachOSignatureProof` (every slice and the regions signing wrote), with their summary and
findings lines for reports.
Does not own: the proof that fills them (`macho`).
"""

from __future__ import annotations

from dataclasses import dataclass

from reprover.compare.signatures import quoted
from reprover.compare.signatures.macho_cms import CmsSigner
from reprover.compare.signatures.pe_certtable import SignatureRegion


@dataclass(frozen=True)
class SliceProof:
    """What was proven about one slice."""

    offset: int
    identifier: str
    team_id: str | None
    flags: int
    hash_type: str
    page_size: int
    pages: int
    exec_seg: tuple[int, int, int] | None
    requirements: str
    entitlements: str
    signer: CmsSigner | None
    external: tuple[str, ...] = ()

    def lines(self) -> tuple[str, ...]:
        """Report lines for this slice."""
        where = f"slice at {self.offset:#x}: " if self.offset else ""
        if not self.pages:
            return (f"{where}not signed, and byte-identical to the rebuilt slice",)
        seg = (
            "none"
            if self.exec_seg is None
            else f"base {self.exec_seg[0]:#x} limit {self.exec_seg[1]:#x} flags "
            f"{self.exec_seg[2]:#x}"
        )
        who = (
            "ad-hoc (no signer; integrity, not identity)"
            if self.signer is None
            else f"CMS signer {quoted(self.signer.subject)}, issuer {quoted(self.signer.issuer)}"
            + (" (chains to pinned trust)" if self.signer.chain else " (signer not pinned)")
        )
        return (
            f"{where}identifier {self.identifier}; team id {self.team_id or 'none'}; flags "
            f"{self.flags:#x}; hash {self.hash_type}; page size {self.page_size}; {self.pages} "
            "pages match the rebuilt file",
            f"{where}exec segment {seg}",
            f"{where}requirements {self.requirements}",
            f"{where}entitlements {self.entitlements}",
            f"{where}signer: {who}",
            *(f"{where}binds a file outside the binary: {e}" for e in self.external),
            *(
                f"{where}{c.kind} timestamp at {c.time.isoformat()} by {c.signer}"
                f"{' (pinned)' if c.trusted else ' (TSA not pinned)'}"
                for c in (self.signer.countersignatures if self.signer else ())
            ),
        )


@dataclass(frozen=True)
class MachOSignatureProof:
    """What was proven about a Mach-O pair (every slice) and the regions signing wrote."""

    slices: tuple[SliceProof, ...]
    regions: tuple[SignatureRegion, ...]

    def summary(self) -> str:
        """One line: what was proven."""
        first = next(s for s in self.slices if s.pages)
        count = f"{len(self.slices)} slices; " if len(self.slices) > 1 else ""
        kind = "ad-hoc " if all(s.signer is None for s in self.slices) else ""
        return (
            f"released = rebuilt + {kind}code signature; {count}identifier '{first.identifier}'; "
            f"every page of the rebuilt file covered ({first.hash_type})"
        )

    def findings(self) -> tuple[str, ...]:
        """Lines for reports: what each slice asserts, who signed, and the regions."""
        return (
            *(line for s in self.slices for line in s.lines()),
            *(f"region {r.region}: {r.offset:#x}+{r.length:#x}" for r in self.regions),
        )

"""A compound file's allocation tables, every entry of them accounted for.

Owns: `table_sectors`, the FAT and DIFAT sectors as the header and the DIFAT chain list them
(so a sector merely marked FATSECT or DIFSECT in the FAT owns nothing and its bytes are checked
like any free sector's), and the entries of the tables no chain reads, each of which MS-CFB
fixes: the header's transaction signature (zero), DIFAT entries past the FAT's sectors and FAT
entries past the file's last sector (FREESECT), the first DIFAT sector of a file with no DIFAT
(ENDOFCHAIN; FREESECT tolerated), MiniFAT entries of mini sectors no stream uses (FREESECT;
osslsigncode ends the table with one ENDOFCHAIN). Any other value is `Hidden`: readers
(olefile, osslsigncode, Windows) skip these entries, so they are room for bytes no field shows
and no signature covers.
Does not own: walking chains and streams, free sectors' content (`ole`).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

import olefile

from reprover.compare.archives.listing import Hidden, Listing, MalformedArchive, read_exact

FREESECT, ENDOFCHAIN = 0xFFFFFFFF, 0xFFFFFFFE
HEADER_DIFAT, HEADER_DIFAT_AT = 109, 0x4C


def _unused(listing: Listing, places: list[tuple[int, int]], what: str) -> None:
    """Hide the first of (offset, value) `places` whose value is not FREESECT, with a count."""
    bad = [at for at, value in places if value != FREESECT]
    if bad:
        listing.hidden.append(Hidden(bad[0], 4, f"{len(bad)} {what} hold data (not FREESECT)"))


def table_sectors(f: BinaryIO, ole: olefile.OleFileIO, listing: Listing) -> tuple[list[int], ...]:
    """(FAT sectors, DIFAT sectors) in order, from the header and the DIFAT chain.

    Hidden: a transaction signature, a first DIFAT sector with no DIFAT, DIFAT entries past
    the FAT's sectors that are not FREESECT, FAT entries past the file's last sector.

    Raises:
        MalformedArchive: the DIFAT chain leaves the file or loops.
    """
    head = read_exact(f, 0, 512, "ole: table")
    (num_fat,) = struct.unpack_from("<I", head, 0x2C)
    (transaction,) = struct.unpack_from("<I", head, 0x34)
    first_difat, num_difat = struct.unpack_from("<II", head, 0x44)
    if transaction:
        listing.hidden.append(Hidden(0x34, 4, "a transaction signature in the header (no "
                                     "transactions are written)"))  # fmt: skip
    if not num_difat and first_difat not in (ENDOFCHAIN, FREESECT):
        listing.hidden.append(Hidden(0x44, 4, "a first DIFAT sector in a file with no DIFAT"))
    places = [
        (HEADER_DIFAT_AT + 4 * i, v)
        for i, v in enumerate(struct.unpack_from(f"<{HEADER_DIFAT}I", head, HEADER_DIFAT_AT))
    ]
    ssize, per = ole.sectorsize, ole.sectorsize // 4
    difat: list[int] = []
    sect = first_difat
    while len(difat) < num_difat:
        if sect >= ole.nb_sect or sect in difat:
            raise MalformedArchive("ole: the DIFAT chain leaves the file or loops")
        difat.append(sect)
        at = (sect + 1) * ssize
        values = struct.unpack(f"<{per}I", read_exact(f, at, ssize, "ole: table"))
        places += [(at + 4 * i, v) for i, v in enumerate(values[:-1])]
        sect = values[-1]
    fat = [v for _, v in places[:num_fat]]
    _unused(listing, places[num_fat:], "DIFAT entries past the FAT's sectors")
    if any(s >= ole.nb_sect for s in fat):
        raise MalformedArchive("ole: a FAT sector lies outside the file")
    tail = []
    for index in range(ole.nb_sect, len(fat) * per):
        at = (fat[index // per] + 1) * ssize + 4 * (index % per)
        tail.append((at, struct.unpack("<I", read_exact(f, at, 4, "ole: table"))[0]))
    _unused(listing, tail, "FAT entries past the last sector")
    return fat, difat


def minifat_slack(
    f: BinaryIO, ole: olefile.OleFileIO, listing: Listing, chain: list[int], used: set[int]
) -> None:
    """Hide MiniFAT entries of mini sectors no stream uses (in the `chain` of MiniFAT
    sectors) that are not FREESECT; the one right after the last used mini sector may be
    ENDOFCHAIN (osslsigncode writes one there)."""
    ssize, per = ole.sectorsize, ole.sectorsize // 4
    after = max(used, default=-1) + 1
    places = []
    for k, sect in enumerate(chain):
        at = (sect + 1) * ssize
        for i, value in enumerate(
            struct.unpack(f"<{per}I", read_exact(f, at, ssize, "ole: table"))
        ):
            index = k * per + i
            if index not in used and not (index == after and value == ENDOFCHAIN):
                places.append((at + 4 * i, value))
    _unused(listing, places, "MiniFAT entries of mini sectors no stream uses")

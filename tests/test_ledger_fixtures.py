"""The ledger on real binaries built by gcc, mingw-w64, clang + lld-link and ld64.lld."""

from __future__ import annotations

import json

import pytest

from ledger_helpers import FIXTURES, PAIRS, as_json, ledger_of
from reprover.model import Cause, Kind


@pytest.mark.parametrize("name", PAIRS)
def test_golden_ledger(name: str) -> None:
    golden = json.loads((FIXTURES / name / "ledger.json").read_text())
    assert as_json(ledger_of(FIXTURES / name / "a", FIXTURES / name / "b")) == golden


def regions(name: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for d in ledger_of(FIXTURES / name / "a", FIXTURES / name / "b").differences:
        out.setdefault(d.region, set()).add(f"{d.kind.value}/{d.cause.value}")
    return out


@pytest.mark.parametrize("name", ["elf-prefix-map", "pe-mingw-notimestamp"])
def test_reproducible_pairs_are_identical(name: str) -> None:
    assert (FIXTURES / name / "a").read_bytes() == (FIXTURES / name / "b").read_bytes()


def test_mingw_timestamp_is_only_timestamp_and_checksum() -> None:
    assert regions("pe-mingw-timestamp") == {
        "pe.coff.TimeDateStamp": {"timestamp/root"},
        "pe.optional_header.CheckSum": {"checksum/consequence"},
    }


def test_elf_date_names_rodata_symbol_and_build_id_consequence() -> None:
    diffs = ledger_of(FIXTURES / "elf-date" / "a", FIXTURES / "elf-date" / "b").differences
    by_region = {d.region: d for d in diffs}
    assert set(by_region) == {"elf.section[.rodata]", "elf.note.gnu.build-id.desc"}
    assert by_region["elf.note.gnu.build-id.desc"].cause is Cause.CONSEQUENCE
    rodata = [d for d in diffs if d.region == "elf.section[.rodata]"]
    assert all(d.symbol and d.symbol.startswith("built+0x") for d in rodata)
    assert all(d.cause is Cause.ROOT for d in rodata)


def test_elf_paths_is_aligned_by_section() -> None:
    ledger = ledger_of(FIXTURES / "elf-paths" / "a", FIXTURES / "elf-paths" / "b")
    assert any("aligned by identity" in n for n in ledger.notes)
    assert any(n.startswith("elf.section[.symtab]: aligned by name") for n in ledger.notes)
    grew = [d for d in ledger.differences if d.detail and "grew by" in d.detail]
    assert [d.region for d in grew] == ["elf.section[.debug_line_str]"]
    assert grew[0].length == 0 and grew[0].kind is Kind.DEBUG_INFO
    assert "section .debug_line_str grew by 16 bytes (71 -> 87)" in (grew[0].detail or "")
    # the moved .symtab, .strtab and .shstrtab did not change: nothing listed inside them
    moved = {"elf.section[.symtab]", "elf.section[.strtab]", "elf.section[.shstrtab]"}
    assert not moved & {d.region for d in ledger.differences}
    total = sum(d.length for d in ledger.differences)
    assert total < 200  # not thousands of shifted bytes


def test_lld_codeview_names_guid_path_and_timestamps() -> None:
    found = regions("pe-lld-codeview")
    assert found["pe.debug.codeview.guid"] == {"pdb-guid/root"}
    assert found["pe.debug.codeview.path"] == {"debug-path/root"}
    assert found["pe.coff.TimeDateStamp"] == {"timestamp/root"}
    assert found["pe.debug[0:CODEVIEW].TimeDateStamp"] == {"timestamp/root"}


def test_lld_brepro_has_no_wall_clock_but_guid_and_path() -> None:
    found = regions("pe-lld-brepro")
    assert "pe.debug.codeview.guid" in found and "pe.debug.codeview.path" in found


def test_mingw_dwarf_differences_are_debug_info() -> None:
    found = regions("pe-mingw-dwarf")
    assert any(r.startswith("pe.section[.debug_") for r in found)
    assert found["pe.optional_header.CheckSum"] == {"checksum/consequence"}
    assert not any("code" in kinds for ks in found.values() for kinds in ks)


@pytest.mark.parametrize("name", ["macho-thin", "macho-fat"])
def test_macho_oso_uuid_and_code_slots(name: str) -> None:
    found = regions(name)
    prefix = "macho[x86_64]" if name == "macho-fat" else "macho"
    assert found[f"{prefix}.symtab.N_OSO.mtime"] == {"timestamp/root"}
    assert found[f"{prefix}.strtab.N_OSO.path"] == {"debug-path/root"}
    assert found[f"{prefix}.LC_UUID.uuid"] == {"build-id/consequence"}
    slots = [r for r in found if ".code_directory.code_slot[" in r]
    assert slots and all(found[r] == {"signature/consequence"} for r in slots)
    if name == "macho-fat":
        assert "macho[arm64].LC_UUID.uuid" in found

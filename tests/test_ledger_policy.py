"""Policy rules on real ledgers: closed vocabulary, equivalent only when all is allowed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ledger_helpers import FIXTURES
from reprover.compare import compare_files
from reprover.errors import InputError
from reprover.model import ArtifactVerdict, Digest, Policy
from reprover.policy import RULES, apply, judge, policy_digest, validate_rules


def result_for(name: str, allow: tuple[str, ...]) -> object:
    a, b = FIXTURES / name / "a", FIXTURES / name / "b"

    def dg(p: Path) -> Digest:
        data = p.read_bytes()
        return Digest(hashlib.sha256(data).hexdigest(), len(data))

    return compare_files(name, a, b, Policy(allow=allow), digests=(dg(a), dg(b)), judge=judge)


def test_unknown_rule_is_named_with_the_valid_ones() -> None:
    with pytest.raises(InputError) as info:
        validate_rules(["pe.timestamp", "pe.timestmap"])
    text = info.value.diagnostics()
    assert "pe.timestmap" in text and "pe.checksum" in text and "elf.build-id" in text


def test_vocabulary_is_documented() -> None:
    assert {"pe.timestamp", "pe.checksum", "pe.debug.codeview", "elf.build-id", "macho.uuid",
            "signature"} <= set(RULES)  # fmt: skip
    assert all(rule.description for rule in RULES.values())


def test_mingw_timestamp_is_equivalent_with_both_rules() -> None:
    result = result_for("pe-mingw-timestamp", ("pe.timestamp", "pe.checksum"))
    assert result.verdict is ArtifactVerdict.EQUIVALENT
    assert {(d.region, d.rule) for d in result.differences} == {
        ("pe.coff.TimeDateStamp", "pe.timestamp"),
        ("pe.optional_header.CheckSum", "pe.checksum"),
    }


def test_one_rule_short_stays_different() -> None:
    result = result_for("pe-mingw-timestamp", ("pe.timestamp",))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert [d.allowed for d in result.differences] == [True, False]


def test_default_policy_allows_nothing() -> None:
    result = result_for("pe-mingw-timestamp", ())
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert not any(d.allowed for d in result.differences)


def test_without_judge_nothing_is_allowed() -> None:
    a, b = FIXTURES / "pe-mingw-timestamp" / "a", FIXTURES / "pe-mingw-timestamp" / "b"
    dig = Digest("0" * 64, 1), Digest("1" * 64, 1)
    result = compare_files("x", a, b, Policy(allow=("pe.timestamp", "pe.checksum")), digests=dig)
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert any("policy not applied" in n for n in result.notes)


def test_elf_date_build_id_rule_does_not_hide_rodata() -> None:
    result = result_for("elf-date", ("elf.build-id", "debug-info"))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    allowed = {d.region for d in result.differences if d.allowed}
    assert allowed == {"elf.note.gnu.build-id.desc"}


def test_macho_rules_leave_the_grown_paths() -> None:
    result = result_for("macho-thin", ("macho.uuid", "macho.oso", "signature"))
    assert result.verdict is ArtifactVerdict.DIFFERENT
    assert any(d.allowed and d.rule == "macho.oso" for d in result.differences)
    assert any(d.allowed and d.rule == "macho.uuid" for d in result.differences)


def test_apply_is_idempotent_and_resets() -> None:
    base = result_for("pe-mingw-timestamp", ("pe.timestamp", "pe.checksum")).differences
    assert apply(base, Policy(allow=("pe.timestamp", "pe.checksum"))) == base
    assert not any(d.allowed or d.rule for d in apply(base, Policy()))


def test_policy_digest_is_stable_and_order_free() -> None:
    one = policy_digest(Policy(allow=("pe.timestamp", "pe.checksum")))
    two = policy_digest(Policy(allow=("pe.checksum", "pe.timestamp")))
    assert one == two and len(one) == 64
    assert one != policy_digest(Policy())

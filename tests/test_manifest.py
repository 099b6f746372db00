"""The reprover.toml parser: valid manifests, and precise errors for every malformed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from reprover.errors import InputError
from reprover.manifest import load

SHA = "a" * 40
GOOD = f"""\
[source]
repo = "../scanner"
commit = "{SHA}"

[build]
command = ["make", "release"]
env = {{ CC = "gcc" }}
output = "out"
timeout = 60

[release]
path = "release"

[[artifact]]
path = "bin/scan"

[policy]
allow = ["pe.timestamp"]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "reprover.toml"
    path.write_text(text)
    return path


def test_valid_manifest_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    manifest = load(_write(tmp_path, GOOD))
    assert manifest.source.repo == str((tmp_path / "../scanner").resolve())
    assert manifest.source.commit == SHA
    assert manifest.recipe.command == ("make", "release")
    assert manifest.recipe.env == {"CC": "gcc"}
    assert manifest.recipe.network is False
    assert manifest.recipe.timeout == 60
    assert manifest.release == tmp_path / "release"
    assert manifest.artifacts == ("bin/scan",)
    assert manifest.policy.allow == ("pe.timestamp",)
    assert len(manifest.sha256) == 64


def test_url_repo_is_kept_and_string_command_allowed(tmp_path: Path) -> None:
    text = GOOD.replace('"../scanner"', '"https://example.org/scanner.git"').replace(
        '["make", "release"]', '"make release"'
    )
    manifest = load(_write(tmp_path, text))
    assert manifest.source.repo == "https://example.org/scanner.git"
    assert manifest.recipe.command == "make release"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("[build]", "[build", "malformed TOML"),
        (
            'output = "out"',
            'output = "out"\noutptu = "x"',
            "reprover.toml:9: [build] outptu: unknown key",
        ),
        ("timeout = 60", 'timeout = "60"', "[build] timeout: expected an integer, got a string"),
        ("timeout = 60", "timeout = true", "expected an integer, got a boolean"),
        ("timeout = 60", "timeout = 0", "positive"),
        (f'commit = "{SHA}"\n', "", "[source] commit: missing required key"),
        (f'commit = "{SHA}"', 'commit = "main"', "not a full commit SHA"),
        (f'commit = "{SHA}"', f'commit = "{SHA[:12]}"', "not a full commit SHA"),
        (f'commit = "{SHA}"', f'commit = "{SHA.upper()}"', "not a full commit SHA"),
        ('repo = "../scanner"', 'repo = "--upload-pack=evil"', "must not start with '-'"),
        ('path = "bin/scan"', 'path = "../etc/passwd"', "reprover.toml:15: [artifact[1]] path"),
        ('path = "bin/scan"', 'path = "/etc/passwd"', "without '..'"),
        ('output = "out"', 'output = "../out"', "without '..'"),
        ('command = ["make", "release"]', "command = []", "non-empty list"),
        ('command = ["make", "release"]', "command = [1, 2]", "non-empty list"),
        ('env = { CC = "gcc" }', "env = { CC = 1 }", 'NAME = "string"'),
        ("[policy]", "[polcy]", "unknown table [polcy]"),
        ("timeout = 60", 'timeout = 60\npath = "relative/build"', "must be absolute"),
    ],
)
def test_malformed_manifest_names_the_problem(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD
    with pytest.raises(InputError) as info:
        load(_write(tmp_path, GOOD.replace(old, new, 1)))
    assert expected in info.value.message
    assert str(tmp_path / "reprover.toml") in info.value.message


def test_missing_table(tmp_path: Path) -> None:
    text = GOOD[: GOOD.index("[release]")] + GOOD[GOOD.index("[[artifact]]") :]
    with pytest.raises(InputError, match=r"missing required table \[release\]"):
        load(_write(tmp_path, text))


def test_malformed_toml_gives_the_line(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"at line 7, column 1"):
        load(_write(tmp_path, GOOD.replace('command = ["make", "release"]', "command = [")))


def test_both_signature_kinds_refused(tmp_path: Path) -> None:
    text = GOOD.replace('commit = "', 'allowed_signers = "a"\ngpg_keyring = "b"\ncommit = "')
    with pytest.raises(InputError, match="not both"):
        load(_write(tmp_path, text))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "reprover.toml"
    path.write_bytes(b"\xff\xfe[source]")
    with pytest.raises(InputError, match="not UTF-8"):
        load(path)


def test_in_toto_release_step(tmp_path: Path) -> None:
    table = (
        '\n[in-toto]\nlayout = "root.layout"\nlayout_keys = ["owner.pub.pem"]\nlinks = "links"\n'
    )
    manifest = load(_write(tmp_path, GOOD + table))
    assert manifest.intoto is not None and manifest.intoto.release_step is None
    manifest = load(_write(tmp_path, GOOD + table + 'release_step = "package"\n'))
    assert manifest.intoto is not None and manifest.intoto.release_step == "package"
    with pytest.raises(InputError, match=r"\[in-toto\] release_step: expected a string"):
        load(_write(tmp_path, GOOD + table + "release_step = 1\n"))


def test_signature_macho_pins(tmp_path: Path) -> None:
    table = (
        '\n[signature]\nmacho_identifier = "com.vendor.engine"\nmacho_flags = 0x10000\n'
        'entitlements = "macos/engine.entitlements"\n'
    )
    policy = load(_write(tmp_path, GOOD + table)).policy
    assert (policy.macho_identifier, policy.macho_flags) == ("com.vendor.engine", 0x10000)
    assert policy.entitlements == "macos/engine.entitlements"
    assert policy.entitlements_data is None  # read from the pinned commit by verify
    for bad in ('"../outside.plist"', '"/etc/x.plist"'):
        with pytest.raises(InputError, match=r"\[signature\] entitlements: expected a relative"):
            load(_write(tmp_path, GOOD + f"\n[signature]\nentitlements = {bad}\n"))
    with pytest.raises(InputError, match=r"\[signature\] macho_flags: expected an integer"):
        load(_write(tmp_path, GOOD + '\n[signature]\nmacho_flags = "0x2"\n'))


def test_release_ignore(tmp_path: Path) -> None:
    text = GOOD.replace('path = "release"\n', 'path = "release"\nignore = ["*.sha256"]\n')
    assert load(_write(tmp_path, text)).release_ignore == ("*.sha256",)
    with pytest.raises(InputError, match=r"\[release\] ignore: '\.\./x' must be a relative"):
        load(
            _write(
                tmp_path,
                GOOD.replace('path = "release"\n', 'path = "release"\nignore = ["../x"]\n'),
            )
        )

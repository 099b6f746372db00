"""The trust snapshot keeps every `[in-toto]` setting and copies the inspection tools too."""

from __future__ import annotations

from pathlib import Path

from reprover import snapshot
from reprover.model import InTotoSpec, Manifest, Recipe, SourceSpec


def test_snapshot_copies_inspection_tools_and_keeps_the_release_step(tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    (release / "foo.tar.gz").write_bytes(b"tarball")
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "package.2f89b927.link").write_text("{}")
    (tmp_path / "root.layout").write_text("{}")
    (tmp_path / "owner.pub.pem").write_text("key")
    tools = tmp_path / "tools" / "scripts"
    tools.mkdir(parents=True)
    (tools / "tar").write_text("#!/bin/sh\n")
    (tools / "tar").chmod(0o755)
    spec = Manifest(
        path=tmp_path / "reprover.toml",
        sha256="0" * 64,
        source=SourceSpec("https://git.example/x.git", "1" * 40),
        recipe=Recipe(command=("make",)),
        release=release,
        intoto=InTotoSpec(
            tmp_path / "root.layout",
            (tmp_path / "owner.pub.pem",),
            tmp_path / "links",
            release_step="package",
            inspection_tools=tools.parent,
        ),
    )
    snap = snapshot.take(spec, {"foo.tar.gz": release / "foo.tar.gz"}, tmp_path / "snap")
    intoto = snap.manifest.intoto
    assert intoto is not None and intoto.release_step == "package"
    assert intoto.inspection_tools is not None
    copied = intoto.inspection_tools / "scripts" / "tar"
    assert intoto.inspection_tools.is_relative_to(tmp_path / "snap")
    assert copied.read_text() == "#!/bin/sh\n" and copied.stat().st_mode & 0o111
    assert any(label.startswith("in-toto inspection tool: ") for label in snap.inputs)
    (tools / "tar").write_text("#!/bin/sh\nrm -rf ~\n")  # a later change is not seen
    assert copied.read_text() == "#!/bin/sh\n"

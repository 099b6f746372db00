"""A real supply chain made with in-toto's own library only (runlib, models), for the tests.

Nothing here imports reprover: the chain is independent of the code that verifies it.
Steps: checkout (author), build (builder, a real C compile), sign (signer; a copy), rebuild
(2 of 3 rebuilders, each a real compile in its own folder). Keys are ed25519 PKCS#8 PEM files
loaded with in-toto's own loader.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from in_toto.models._signer import load_crypto_signer_from_pkcs8_file
from in_toto.models.layout import Layout, Step
from in_toto.models.metadata import Envelope, Metablock
from in_toto.runlib import in_toto_run

ROLES = ("owner", "author", "builder", "signer", "rb1", "rb2", "rb3", "attacker")
SOURCE = {
    "main.c": '#include <stdio.h>\nint main(void) { puts("scan: clean"); return 0; }\n',
    "README": "scanner engine\n",
}


@dataclass
class Chain:
    """Where the chain's files are."""

    root: Path
    dsse: bool
    layout: Path
    links: Path
    release: Path
    keys: Path
    keyids: dict[str, str]

    def pub(self, role: str) -> Path:
        return self.keys / f"{role}.pub.pem"

    def key(self, role: str) -> Path:
        return self.keys / f"{role}.pem"

    def link(self, step: str, role: str) -> Path:
        return self.links / f"{step}.{self.keyids[role][:8]}.link"


def signer(chain_keys: Path, role: str) -> Any:
    return load_crypto_signer_from_pkcs8_file(str(chain_keys / f"{role}.pem"))


def write_keys(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True)
    keyids = {}
    for role in ROLES:
        # A key id whose link-file prefix (its first 8 hex digits) has a letter, so that the
        # tests spelling it in upper case always have another spelling (all-digit prefixes
        # happen in ~2% of keys): the tests run every time instead of skipping at random.
        keyid = ""
        while not any(c in "abcdef" for c in keyid[:8]):
            private = ed25519.Ed25519PrivateKey.generate()
            (folder / f"{role}.pem").write_bytes(
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            (folder / f"{role}.pub.pem").write_bytes(
                private.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            keyid = signer(folder, role).public_key.keyid
        keyids[role] = keyid
    return keyids


def key_dict(keys: Path, role: str) -> dict[str, Any]:
    public = signer(keys, role).public_key
    return {**public.to_dict(), "keyid": public.keyid}


def make_layout(
    keys: Path,
    keyids: dict[str, str],
    *,
    dsse: bool,
    expires: datetime | None = None,
    sign_with: str = "owner",
    rebuild_threshold: int = 2,
) -> bytes:
    """The transparency-center layout, built with in-toto's models."""
    steps = [
        Step(
            name="checkout",
            pubkeys=[keyids["author"]],
            expected_materials=[["DISALLOW", "*"]],
            expected_products=[["CREATE", "*"], ["DISALLOW", "*"]],
        ),
        Step(
            name="build",
            pubkeys=[keyids["builder"]],
            expected_materials=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "checkout"],
                ["DISALLOW", "*"],
            ],
            expected_products=[["CREATE", "*"], ["DISALLOW", "*"]],
        ),
        Step(
            name="sign",
            pubkeys=[keyids["signer"]],
            expected_materials=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "build"],
                ["DISALLOW", "*"],
            ],
            expected_products=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "build"],
                ["MODIFY", "*"],
                ["DISALLOW", "*"],
            ],
        ),
        Step(
            name="rebuild",
            pubkeys=[keyids["rb1"], keyids["rb2"], keyids["rb3"]],
            threshold=rebuild_threshold,
            expected_materials=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "checkout"],
                ["DISALLOW", "*"],
            ],
            expected_products=[
                ["MATCH", "*", "WITH", "PRODUCTS", "FROM", "build"],
                ["DISALLOW", "*"],
            ],
        ),
    ]
    when = expires or datetime.now(timezone.utc) + timedelta(days=30)
    layout = Layout(
        steps=steps,
        keys={
            keyids[r]: key_dict(keys, r)
            for r in ("author", "builder", "signer", "rb1", "rb2", "rb3")
        },
        expires=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    metadata = Envelope.from_signable(layout) if dsse else Metablock(signed=layout)
    metadata.create_signature(signer(keys, sign_with))
    return serialize(metadata)


def serialize(metadata: Any) -> bytes:
    tmp = Path(f"/tmp/intoto-chain-{id(metadata)}.json")
    metadata.dump(str(tmp))
    data = tmp.read_bytes()
    tmp.unlink()
    return data


def compile_in(folder: Path) -> None:
    """A real compile: folder/src/main.c -> folder/out/scan."""
    (folder / "out").mkdir()
    subprocess.run(
        ["cc", "-O2", "-o", "../out/scan", "main.c"],
        cwd=folder / "src",
        check=True,
        capture_output=True,
    )


def record(
    step: str, folder: Path, chain_keys: Path, role: str, links: Path, *, dsse: bool, inputs: str
) -> None:
    """Record folder/<inputs> as materials and folder/out as products, in-toto's way."""
    in_toto_run(
        step,
        [inputs] if inputs else [],
        ["out"],
        [],
        base_path=str(folder),
        lstrip_paths=[f"{inputs}/", "out/"] if inputs else ["out/"],
        signer=signer(chain_keys, role),
        use_dsse=dsse,
        metadata_directory=str(links),
    )


def make_chain(root: Path, *, dsse: bool) -> Chain:
    """Create keys, source, the four steps' links, the release and the layout under `root`."""
    keys, links, release = root / "keys", root / "links", root / "release"
    keyids = write_keys(keys)
    links.mkdir()
    checkout = root / "checkout"
    (checkout / "out").mkdir(parents=True)
    for name, text in SOURCE.items():
        (checkout / "out" / name).write_text(text)
    record("checkout", checkout, keys, "author", links, dsse=dsse, inputs="")
    for step, role in (("build", "builder"), ("rebuild", "rb1"), ("rebuild", "rb2")):
        folder = root / f"{step}-{role}"
        shutil.copytree(checkout / "out", folder / "src")
        compile_in(folder)
        record(step, folder, keys, role, links, dsse=dsse, inputs="src")
    sign = root / "sign"
    shutil.copytree(root / "build-builder" / "out", sign / "in")
    shutil.copytree(sign / "in", sign / "out")  # signing is a copy in this chain
    record("sign", sign, keys, "signer", links, dsse=dsse, inputs="in")
    shutil.copytree(sign / "out", release)
    layout = root / "root.layout"
    layout.write_bytes(make_layout(keys, keyids, dsse=dsse))
    return Chain(root, dsse, layout, links, release, keys, keyids)


# Fixtures for the adversarial chain tests (import `chain_fixture` and `pristine_fixture`).


@pytest.fixture(scope="session", name="pristine")
def pristine_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Chain]:
    return {
        dsse: make_chain(tmp_path_factory.mktemp(f"chain-{dsse}"), dsse=dsse)
        for dsse in (True, False)
    }


@pytest.fixture(
    name="chain", params=[pytest.param(True, id="dsse"), pytest.param(False, id="metablock")]
)
def chain_fixture(
    request: pytest.FixtureRequest, pristine: dict[bool, Chain], tmp_path: Path
) -> Chain:
    source = pristine[request.param]
    root = tmp_path / "chain"
    shutil.copytree(source.root, root, symlinks=True)
    return Chain(
        root,
        source.dsse,
        root / "root.layout",
        root / "links",
        root / "release",
        root / "keys",
        dict(source.keyids),
    )

"""The demo's supply chain: keys, the transparency-center layout, every link, a tampered copy.

Owns: `make_chain`, which plays every party of the chain for the demo: the owner signs the
layout; the engine team records `checkout`; the transparency center records `build` and `sign`
(the demo signs the Windows engine with osslsigncode when it can); two independent rebuilders record
`rebuild` (threshold 2). Links are made with reprover's recorder (parallel hashing, in-toto's
link format, DSSE). A second links folder holds the same chain with the build link changed
after signing, which must fail verification.
Does not own: the scenario's other steps or printing (`reprover.demo`).
"""

from __future__ import annotations

import json
import shutil
from base64 import b64decode, b64encode
from dataclasses import dataclass
from pathlib import Path

from reprover import intoto, keys
from reprover.digest import hash_file
from reprover.fsutil import write_atomic

ROLES = ("owner", "author", "builder", "signer", "vendor-ci", "outside-lab")
SPEC = """# The demo's layout specification (see `reprover layout init --guide`).
readme = "Scanner engine demo: authors, transparency center, 2 of 2 rebuilders."
expires_days = 90

[functionaries]
author = "keys/author.pub.pem"
builder = "keys/builder.pub.pem"
signer = "keys/signer.pub.pem"
vendor-ci = "keys/vendor-ci.pub.pem"
outside-lab = "keys/outside-lab.pub.pem"

[[steps]]
name = "checkout"
functionaries = ["author"]
materials = ["DISALLOW *"]
products = ["CREATE *", "DISALLOW *"]

[[steps]]
name = "build"
functionaries = ["builder"]
materials = ["MATCH * WITH PRODUCTS FROM checkout", "DISALLOW *"]
products = ["CREATE *", "DISALLOW *"]

[[steps]]
name = "sign"
functionaries = ["signer"]
materials = ["MATCH * WITH PRODUCTS FROM build", "DISALLOW *"]
products = ["MATCH * WITH PRODUCTS FROM build", "MODIFY *.exe", "DISALLOW *"]

[[steps]]
name = "rebuild"
functionaries = ["vendor-ci", "outside-lab"]
threshold = 2
materials = ["MATCH * WITH PRODUCTS FROM checkout", "DISALLOW *"]
products = ["MATCH * WITH PRODUCTS FROM build", "DISALLOW *"]
"""


@dataclass(frozen=True)
class ChainPaths:
    """Where the chain is; use `layout`, `layout_key` and `links` in a manifest's [in-toto]."""

    folder: Path
    keys: Path
    layout: Path
    layout_key: Path
    links: Path
    links_tampered: Path


def make_chain(workspace: Path, commit_tree: Path, built: Path, release: Path) -> ChainPaths:
    """Create the chain for the source `commit_tree` (`.git` is skipped), the build
    department's unsigned outputs `built`, and the signed `release`.

    The rebuild links attest the build's bytes: in the demo the rebuilders' outputs are the
    same files (`reprover verify` then rebuilds and compares them for real).

    Raises:
        InputError: a tree or the release cannot be read.
        InconclusiveError: a file cannot be written.
    """
    folder = workspace / "chain"
    key_dir = folder / "keys"
    links = folder / "links"
    key_dir.mkdir(parents=True)
    links.mkdir()
    signers = {}
    for role in ROLES:
        private, _public = keys.generate(role, key_dir)
        signers[role] = keys.load_signer(private)
    spec_path = folder / "layout.toml"
    write_atomic(spec_path, SPEC.encode())
    layout = folder / "root.layout"
    write_atomic(layout, intoto.signed_layout(intoto.load_spec(spec_path), signers["owner"]))
    source = intoto.hash_artifacts(intoto.list_artifacts(commit_tree), hash_file)
    outputs = intoto.hash_artifacts(intoto.list_artifacts(built), hash_file)
    signed = intoto.hash_artifacts(intoto.list_artifacts(release), hash_file)
    steps = [
        ("checkout", "author", {}, source, ["git", "checkout"]),
        ("build", "builder", source, outputs, ["make", "release", "windows"]),
        ("sign", "signer", outputs, signed, ["osslsigncode", "sign", "..."]),
        ("rebuild", "vendor-ci", source, outputs, ["reprover", "rebuild"]),
        ("rebuild", "outside-lab", source, outputs, ["reprover", "rebuild"]),
    ]
    for step, role, materials, products, command in steps:
        name, data = intoto.make_link(step, materials, products, signers[role], command=command)
        write_atomic(links / name, data)
    tampered = folder / "links-tampered"
    shutil.copytree(links, tampered)
    _change_after_signing(next(tampered.glob("build.*.link")))
    return ChainPaths(folder, key_dir, layout, key_dir / "owner.pub.pem", links, tampered)


def _change_after_signing(link: Path) -> None:
    """Swap one product hash of a DSSE link, keeping its signature (an insider's edit)."""
    envelope = json.loads(link.read_bytes())
    payload = json.loads(b64decode(envelope["payload"]))
    for digest in payload["products"].values():
        digest["sha256"] = "0" * 64
        break
    envelope["payload"] = b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    write_atomic(link, json.dumps(envelope, sort_keys=True).encode())

"""in-toto for reprover: layouts from a readable spec, lint, link recording, hardened verification.

Owns: everything in-toto. `spec` turns the TOML specification into a signed layout; `lint`
finds what makes a layout weaker than it looks; `record` hashes artifacts (in parallel, through
the caller's hasher) and signs links; `links` and `verify` check a chain, closing the gaps of
in-toto 3.1.0 listed in the module docstring of `reprover.intoto.verify`; `metadata` reads and
writes both envelope formats (DSSE and the legacy Metablock).
Does not own: private keys on disk (`reprover.keys`), the report (`reprover.verify`).
"""

from __future__ import annotations

from reprover.intoto.lint import Finding, lint_layout
from reprover.intoto.metadata import Loaded, load, load_public_key
from reprover.intoto.record import (
    DEFAULT_EXCLUDES,
    hash_artifacts,
    list_artifacts,
    make_link,
    tracked_files,
)
from reprover.intoto.spec import LayoutSpec, load_spec, signed_layout
from reprover.intoto.verify import verify_chain

__all__ = [
    "DEFAULT_EXCLUDES",
    "Finding",
    "LayoutSpec",
    "Loaded",
    "hash_artifacts",
    "lint_layout",
    "list_artifacts",
    "load",
    "load_public_key",
    "load_spec",
    "make_link",
    "signed_layout",
    "tracked_files",
    "verify_chain",
]

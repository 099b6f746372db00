"""`reprover rebuild MANIFEST --link-key KEY.pem -o DIR`: rebuild and sign an in-toto link.

An independent rebuilder runs this and publishes DIR: the rebuilt artifacts and the signed link
`rebuild.<keyid8>.link` for the layout's `rebuild` step (materials: the source tree at the
commit, without `.git`; products: the rebuilt artifacts, named as in the release).
"""

from __future__ import annotations

import argparse
import os
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from reprover import intoto, keys, manifest
from reprover.cli.common import add_common_options, err
from reprover.cli.common import out as say
from reprover.digest import copy_and_hash, hash_file
from reprover.errors import ExitCode, InputError
from reprover.fsutil import write_atomic
from reprover.model import CheckResult
from reprover.verify import Options
from reprover.verify.rebuild import rebuilt_source

STEP = "rebuild"


def register(sub: Any) -> None:
    """Add the `rebuild` subcommand."""
    parser = sub.add_parser(
        "rebuild",
        help="rebuild a manifest's source and sign an in-toto link for step 'rebuild'",
        description=(
            "Pin and rebuild the manifest's source exactly as `reprover verify` does, copy the "
            "rebuilt artifacts into DIR and write the signed link rebuild.<keyid8>.link there. "
            "Nothing is compared: publish DIR so verifiers can count independent rebuilds."
        ),
    )
    parser.add_argument("manifest", type=Path, help="the reprover.toml describing the release")
    parser.add_argument("--link-key", type=Path, required=True, help="your private key (PEM)")
    parser.add_argument("--passphrase-env", metavar="VAR", help="the key's passphrase is in VAR")
    parser.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DIR", help="new folder"
    )
    parser.add_argument("--legacy", action="store_true", help="write a legacy Metablock link")
    parser.add_argument(
        "--allow-network", action="store_true", help="build with network if isolation is missing"
    )
    parser.add_argument(
        "--allow-weak-isolation",
        action="store_true",
        help="build even where the strong sandbox cannot run (as for verify)",
    )
    parser.add_argument("--build-path", type=Path, help="absolute build path (as for verify)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Rebuild, copy the artifacts, write the link atomically; print the link's path.

    Raises:
        InputError: bad manifest, key or output folder.
        BuildError, ToolMissingError: the rebuild could not run.
    """
    passphrase = None
    if args.passphrase_env:
        value = os.environ.get(args.passphrase_env)
        if not value:
            raise InputError(f"environment variable {args.passphrase_env} is empty or unset")
        passphrase = value.encode()
    signer = keys.load_signer(args.link_key, passphrase)
    out: Path = args.output
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder")
    spec = manifest.load(args.manifest)
    options = Options(
        allow_network=args.allow_network,
        build_path=args.build_path.absolute() if args.build_path else None,
        allow_weak_isolation=args.allow_weak_isolation,
    )

    def progress(message: str) -> None:
        if not args.quiet:
            err(f"reprover: {message}")

    checks: list[CheckResult] = []
    with rebuilt_source(spec, options, progress, checks) as rebuild:
        if rebuild is None:
            for check in checks:
                err(f"reprover: {check.name}: {check.detail}")
            return int(ExitCode.FAIL)
        taken = rebuild.outputs
        if taken.problem is not None:
            raise InputError(f"the rebuilt outputs cannot be taken: {taken.problem}")
        if taken.refused:
            name, reason = next(iter(taken.refused.items()))
            raise InputError(f"rebuilt artifact {name} refused: {reason}")
        progress("recording the source tree and the rebuilt artifacts")
        materials = intoto.hash_artifacts(intoto.tracked_files(rebuild.checkout), hash_file)
        built = {n: p for n, p in taken.files.items() if not _excluded(n)}
        if not built:
            raise InputError(f"the rebuild produced nothing in {spec.recipe.output}")
        products = {name: {"sha256": taken.digests[name].sha256} for name in sorted(built)}
        out.mkdir(parents=True, exist_ok=True)
        for name, path in built.items():
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with path.open("rb") as source:
                copied = copy_and_hash(source.fileno(), target)
            if copied != taken.digests[name]:
                raise InputError(f"{name} changed while it was copied into {out}")
            target.chmod(0o644)
    command = spec.recipe.command
    filename, data = intoto.make_link(
        STEP,
        materials,
        products,
        signer,
        command=command if isinstance(command, tuple) else ("sh", "-c", command),
        legacy=args.legacy,
    )
    write_atomic(out / filename, data)
    say(str(out / filename))
    if not args.quiet:
        err(
            f"reprover: {len(materials)} source file(s), {len(products)} artifact(s); "
            f"keyid {signer.public_key.keyid}"
        )
    return 0


def _excluded(name: str) -> bool:
    """Whether in-toto's default excludes (link files, .git, ...) leave `name` out."""
    return any(fnmatchcase(p, x) for p in name.split("/") for x in intoto.DEFAULT_EXCLUDES)

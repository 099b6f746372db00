"""Hardened in-toto verification of a release against a signed layout.

Owns: `verify_chain`, which runs these steps, in this order:

1. load the layout and the owner's public keys (bad input raises `InputError`);
2. check the layout's signature by every owner key ourselves (in-toto's DSSE error is empty);
3. check the expiry in UTC and refuse layouts whose keys or thresholds make counting unsound
   (expiry missing, keyid not matching its key, one key listed twice, threshold below 1);
4. check every link file ourselves: parse, signature, signer authorized for the step, the
   signed `name` equal to the step, threshold over distinct authorized public keys, every
   valid link of a step recording the same materials and products;
5. run in-toto's `in_toto_verify` in a throw-away folder holding only the links that passed
   (as the bytes we checked) and, when the layout has inspections, copies of the verifier's
   inspection tools (`inspection_tools`, if given) and of the released files; every in-toto
   exception becomes a finding naming the step and the rule;
6. check that every released file is a product of the release step (`[in-toto]
   release_step`; default `sign`, else `build`), by hash; every valid link of that step
   agrees on its products (step 4), so no key order can pick another answer.

Every failure is collected as one finding per line in a `VerificationError`.
Does not own: the report (`reprover.verify` turns the result into a `CheckResult`).
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import in_toto.log
import securesystemslib.exceptions as sslib_exceptions
from in_toto import verifylib
from in_toto.exceptions import Error as InTotoError
from in_toto.exceptions import RuleVerificationError
from in_toto.models.layout import Layout
from in_toto.models.link import Link

from reprover.errors import InconclusiveError, InputError, VerificationError
from reprover.intoto.links import StepLinks, check_links, link_products
from reprover.intoto.lint import ERROR, lint_layout
from reprover.intoto.metadata import load, load_public_key, signature_ok
from reprover.model import InTotoSpec

FATAL_LINT = frozenset(
    {
        "expiry-missing",
        "expiry-format",
        "expired",
        "keyid-mismatch",
        "duplicate-key",
        "threshold-low",
        "unknown-key",
        "keyid-prefix",
        "key-malformed",
    }
)
INSPECT_TIMEOUT = 60
RULE_ARTIFACTS = re.compile(r"matched the following artifacts: (\[.*?\])")


def verify_chain(
    spec: InTotoSpec, released: dict[str, Path], *, now: datetime | None = None
) -> str:
    """Verify the supply chain of `released` (relative path -> file) against `spec`.

    Returns:
        A one-line summary of what was verified.

    Raises:
        InputError: the layout, a layout key or the links folder is malformed or unreadable,
            or the release step is not in the layout.
        VerificationError: the chain fails; `details` holds one finding per line, each
            naming the step, the key and the rule.
        InconclusiveError: an inspection timed out.
    """
    now = now or datetime.now(timezone.utc)
    loaded = load(spec.layout, "layout")
    layout = loaded.payload
    if not isinstance(layout, Layout):
        raise InputError(f"{spec.layout} holds a link, not a layout")
    final = release_step(layout, spec.release_step)
    if not spec.layout_keys:
        raise InputError("[in-toto] layout_keys is empty: the layout's signer must be pinned")
    owner_keys = {p: load_public_key(p) for p in spec.layout_keys}
    bad = [
        f"layout: no valid signature by {p.name} (key {k['keyid'][:8]}) [layout-signature]"
        for p, k in owner_keys.items()
        if not signature_ok(loaded, k)
    ]
    if bad:
        raise _failed("the in-toto layout is not signed by the pinned key(s)", bad)
    findings = [
        f"{f.where}: {f.message} [{f.code}]"
        for f in lint_layout(loaded, now=now)
        if f.severity == ERROR and f.code in FATAL_LINT
    ]
    try:
        steps, link_findings = check_links(layout, spec.links)
    except OSError as exc:
        raise InputError(f"cannot list links folder {spec.links}: {exc.strerror or exc}") from exc
    findings += link_findings
    if findings:
        raise _failed("the in-toto chain does not verify", findings)
    _run_in_toto(
        loaded.metadata,
        layout,
        {k["keyid"]: k for k in owner_keys.values()},
        steps,
        _inspection_files(released, spec.inspection_tools) if layout.inspect else {},
    )
    findings = _released_are_products(final, link_products(steps[final]), released)
    if findings:
        raise _failed("the released files are not what the in-toto chain produced", findings)
    counts = ", ".join(f"{n} {len(s.valid)}/{s.step.threshold}" for n, s in steps.items())
    return (
        f"layout signed by {len(owner_keys)} pinned key(s), expires {layout.expires}; "
        f"links: {counts}; {len(released)} released file(s) are products of {final}"
    )


def release_step(layout: Layout, named: str | None) -> str:
    """The step whose products are the released files: `named`, else `sign`, else `build`.

    Raises:
        InputError: `named` is not a step of the layout, or it names none and the layout has
            neither a `sign` nor a `build` step.
    """
    names = [step.name for step in layout.steps]
    if named is not None:
        if named not in names:
            raise InputError(
                f"the release step {named!r} is not a step of the layout (its steps: "
                f"{', '.join(names)})",
                hint="set [in-toto] release_step (or --release-step) to the step whose "
                "products are the released files",
            )
        return named
    for default in ("sign", "build"):
        if default in names:
            return default
    raise InputError(
        f"the layout has neither a 'sign' nor a 'build' step (its steps: {', '.join(names)})",
        hint="name the step whose products are the released files with [in-toto] "
        "release_step or --release-step",
    )


def _failed(message: str, findings: list[str]) -> VerificationError:
    return VerificationError(message, details="\n".join(findings))


def _run_in_toto(
    metadata: Any,
    layout: Layout,
    owner_keys: dict[str, dict[str, Any]],
    steps: dict[str, StepLinks],
    inspected: dict[str, Path],
) -> None:
    with tempfile.TemporaryDirectory(prefix="reprover-intoto-") as tmp:
        links_dir, work = Path(tmp, "links"), Path(tmp, "work")
        links_dir.mkdir()
        work.mkdir()
        for name, links in steps.items():
            for keyid, data in links.data.items():
                (links_dir / f"{name}.{keyid[:8]}.link").write_bytes(data)
        for rel, path in inspected.items():
            target = work / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        try:
            with _quiet_in_toto(), _cwd(work):
                verifylib.in_toto_verify(
                    metadata,
                    owner_keys,
                    link_dir_path=str(links_dir),
                    persist_inspection_links=False,
                    inspect_timeout=INSPECT_TIMEOUT,
                )
        except RuleVerificationError as exc:
            raise _failed("the in-toto artifact rules fail", [_rule_finding(exc, steps)]) from exc
        except subprocess.TimeoutExpired as exc:
            raise InconclusiveError(
                f"an in-toto inspection timed out after {INSPECT_TIMEOUT} s: {exc.cmd!r}"
            ) from exc
        except FileNotFoundError as exc:
            raise _failed(
                "an in-toto inspection could not run",
                [f"inspection: command not found: {exc.filename or exc} [inspection]"],
            ) from exc
        except (InTotoError, sslib_exceptions.Error, ValueError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise _failed(
                "the in-toto chain does not verify",
                [f"in-toto: {type(exc).__name__}: {text}"],
            ) from exc


def _inspection_files(released: dict[str, Path], tools: Path | None) -> dict[str, Path]:
    """The files an inspection's folder holds: the verifier's tools, then the released files.

    Raises:
        InputError: the tools folder cannot be read, or a released file has a tool's name.
    """
    files: dict[str, Path] = {}
    if tools is not None:
        try:
            found = sorted(p for p in tools.rglob("*") if p.is_file() and not p.is_symlink())
        except OSError as exc:
            raise InputError(f"cannot read inspection tools {tools}: {exc}") from exc
        if not tools.is_dir():
            raise InputError(f"inspection tools folder {tools} is not a folder")
        files = {p.relative_to(tools).as_posix(): p for p in found}
    for rel, path in released.items():
        if rel in files:
            raise InputError(f"released file {rel} has the name of an inspection tool in {tools}")
        files[rel] = path
    return files


def _rule_finding(exc: RuleVerificationError, steps: dict[str, StepLinks]) -> str:
    trace = verifylib.RULE_TRACE
    step, kind = trace.get("source_name", "?"), trace.get("source_type", "?")
    first = str(exc).splitlines()[0]
    finding = f"step {step}: expected_{kind}: {first} [rule]"
    match = RULE_ARTIFACTS.search(first)
    if not match or step not in steps:
        return finding
    try:
        artifacts = [str(a) for a in ast.literal_eval(match[1])]
    except (ValueError, SyntaxError):
        return finding
    notes = [_changed(a, step, kind, steps) for a in artifacts]
    explained = [n for n in notes if n]
    return finding + ("; " + "; ".join(explained) if explained else "")


def _changed(artifact: str, step: str, kind: str, steps: dict[str, StepLinks]) -> str | None:
    """Name the earlier step whose product `artifact` differs from, if any."""
    own = next(iter(steps[step].valid.values())).payload
    assert isinstance(own, Link)  # noqa: S101 - check_links keeps links only
    mine = (own.materials if kind == "materials" else own.products).get(artifact, {})
    for other, links in steps.items():
        if other == step or not links.valid:
            continue
        theirs = link_products(links).get(artifact)
        if theirs and mine and theirs.get("sha256") != mine.get("sha256"):
            return (
                f"{artifact} has sha256 {str(mine.get('sha256'))[:12]} here but "
                f"{str(theirs.get('sha256'))[:12]} in the products of {other}: it changed "
                "between the steps"
            )
    return None


def _released_are_products(
    step: str, products: dict[str, Any], released: dict[str, Path]
) -> list[str]:
    findings = []
    for name, path in sorted(released.items()):
        digest = _sha256(path)
        recorded = products.get(name)
        if recorded is None:
            listed = ", ".join(sorted(products)[:5]) or "nothing"
            findings.append(
                f"released {name}: not a product of step {step} (its products: {listed}) "
                "[released-not-product]"
            )
        elif not isinstance(recorded, dict) or recorded.get("sha256") != digest:
            theirs = recorded.get("sha256") if isinstance(recorded, dict) else None
            findings.append(
                f"released {name}: sha256 {digest[:12]} differs from the product of step "
                f"{step} ({str(theirs)[:12]}) [released-not-product]"
            )
    return findings


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            while block := stream.read(1 << 20):
                sha.update(block)
    except OSError as exc:
        raise InputError(f"cannot read released file {path}: {exc.strerror or exc}") from exc
    return sha.hexdigest()


@contextmanager
def _cwd(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextmanager
def _quiet_in_toto() -> Iterator[None]:
    """Keep in-toto's own stderr handler from printing while the library runs."""
    logger = logging.getLogger("in_toto")
    null = logging.NullHandler()
    logger.addHandler(null)
    logger.removeHandler(in_toto.log.HANDLER)
    try:
        yield
    finally:
        logger.addHandler(in_toto.log.HANDLER)
        logger.removeHandler(null)

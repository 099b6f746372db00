"""Checking every link file against the layout before in-toto sees it.

Owns: finding the link files of each step (`STEP.KEYID8.link`), parsing them, and checking
each one's signature, signer and `name` ourselves, so that a failure is reported as what it
is (modified after signing, signed by a key the step does not authorize, a key filed under
another key's name, a link of another step renamed, an artifact name that is absolute or
escapes its folder, corrupt), not as in-toto's "threshold not met"; counting each step's
threshold over distinct authorized public keys (SubjectPublicKeyInfo DER, not keyid
strings), and requiring every valid link of a step to record the same
materials and products (in-toto compares them only for thresholds above 1).
Does not own: artifact rules (in-toto's verifylib does those, see `reprover.intoto.verify`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from in_toto.models.layout import Layout, Step
from in_toto.models.link import Link

from reprover.intoto.metadata import (
    Loaded,
    MetadataFormatError,
    key_material,
    parse,
    signature_ok,
)

SHOWN = 5
LINK_NAME = re.compile(r"^(?P<step>[^/\\]+)\.(?P<prefix>[0-9a-fA-F]{8})\.link$")


@dataclass
class StepLinks:
    """The links that passed every check for one step, keyed by the authorized keyid."""

    step: Step
    valid: dict[str, Loaded] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)


def check_links(layout: Layout, folder: Path) -> tuple[dict[str, StepLinks], list[str]]:
    """Check every link file in `folder` that names a step of `layout`.

    Returns:
        The valid links per step, and one finding per problem (empty when all is well).

    Raises:
        OSError: the folder cannot be listed (the caller wraps it).
    """
    roles = _roles(layout)
    files: dict[str, list[tuple[Path, str]]] = {step.name: [] for step in layout.steps}
    for path in sorted(folder.iterdir()):
        match = LINK_NAME.match(path.name)
        if match and match["step"] in files:
            files[match["step"]].append((path, match["prefix"]))
    result: dict[str, StepLinks] = {}
    findings: list[str] = []
    for step in layout.steps:
        links = StepLinks(step)
        for path, prefix in files[step.name]:
            finding = _check_one(layout, step, path, prefix, roles=roles, links=links)
            if finding:
                findings.append(f"step {step.name}: {path.name}: {finding}")
        findings += _threshold(layout, step, links)
        findings += _disagreements(step, links)
        result[step.name] = links
    return result, findings


def _check_one(
    layout: Layout,
    step: Step,
    path: Path,
    prefix: str,
    *,
    roles: Mapping[str, list[str]],
    links: StepLinks,
) -> str | None:
    try:
        data = path.read_bytes()
        loaded = parse(data, path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc} [unreadable-link]"
    except MetadataFormatError as exc:
        return f"corrupt link file: {exc} [corrupt-link]"
    if not isinstance(loaded.payload, Link):
        return "holds a layout (sublayouts are not supported) [sublayout]"
    # in-toto looks for exactly `STEP.{keyid:.8}.link`: the prefix as the keyid spells it.
    claimed = [k for k in step.pubkeys if k.startswith(prefix) and k in layout.keys]
    if len(claimed) == 1 and signature_ok(loaded, layout.keys[claimed[0]]):
        keyid = claimed[0]
        problem = _content_problem(loaded.payload, step, keyid)
        if problem is None:
            links.valid[keyid] = loaded
            links.data[keyid] = data
        return problem
    return _why_not_valid(layout, step, loaded, claimed, roles)


def _content_problem(link: Link, step: Step, keyid: str) -> str | None:
    """What is wrong with a validly signed link's content, if anything."""
    if link.name != step.name:
        return (
            f"validly signed by key {keyid[:8]}, but it is the link of step {link.name!r} "
            f"renamed to step {step.name!r} [name-mismatch]"
        )
    unsafe = _unsafe_name(link)
    if unsafe is not None:
        return (
            f"validly signed by key {keyid[:8]}, but it names the artifact {unsafe!r}, which "
            "is absolute or escapes its folder [unsafe-path]"
        )
    return None


def _unsafe_name(link: Link) -> str | None:
    """The first material or product name that is absolute or contains `..`, if any."""
    for name in (*link.materials, *link.products):
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", name):
            return str(name)
    return None


def _why_not_valid(
    layout: Layout,
    step: Step,
    loaded: Loaded,
    claimed: list[str],
    roles: Mapping[str, list[str]],
) -> str:
    sig_keyids = loaded.signature_keyids
    if not sig_keyids:
        return "carries no signature [unsigned-link]"
    actual = [k for k in sig_keyids if k in layout.keys and signature_ok(loaded, layout.keys[k])]
    if actual:
        signer = actual[0]
        if signer in step.pubkeys and not claimed:
            return (
                f"signed by key {signer[:8]}, but its file name names no key of the step: "
                f"in-toto reads it only as {step.name}.{signer[:8]}.link [misnamed-link]"
            )
        if signer in step.pubkeys:
            return (
                f"signed by key {signer[:8]} but filed as the link of {claimed[0][:8]}: the same "
                f"key cannot provide two links toward threshold {step.threshold} [same-key-twice]"
            )
        where = roles.get(signer)
        role = f" (authorized for step(s) {', '.join(where)})" if where else ""
        return (
            f"signed by key {signer[:8]}{role}, which step {step.name} does not authorize "
            "[unauthorized-key]"
        )
    listed = [k for k in sig_keyids if k in layout.keys]
    if listed:
        return (
            f"the signature by key {listed[0][:8]} does not verify: the link was modified "
            "after signing or the signature is broken [bad-signature]"
        )
    return (
        f"signed by key(s) {', '.join(k[:8] for k in sig_keyids)} that the layout does not "
        f"list, so step {step.name} does not authorize them [unauthorized-key]"
    )


def _threshold(layout: Layout, step: Step, links: StepLinks) -> list[str]:
    distinct = {key_material(layout.keys[k]) for k in links.valid}
    if len(distinct) >= max(step.threshold, 1):
        return []
    missing = [k[:8] for k in step.pubkeys if k not in links.valid]
    expected = ", ".join(f"{step.name}.{k}.link" for k in missing) or "none"
    return [
        f"step {step.name}: needs {step.threshold} link(s) from distinct authorized keys, "
        f"found {len(distinct)} valid; missing or invalid: {expected} [threshold]"
    ]


def _disagreements(step: Step, links: StepLinks) -> list[str]:
    """One finding per valid link whose artifacts differ from another valid link's.

    in-toto compares the links of a step only when its threshold is above 1, then checks the
    rules on one of them (the first key in layout order): a second authorized link with other
    products would be ignored or used depending on key order. Every valid link of a step
    must record the same materials and products; the reference is the link whose file name
    sorts first, so the finding is the same whatever the order of keys.
    """
    named = sorted(
        ((loaded.path.name, loaded) for loaded in links.valid.values()), key=lambda i: i[0]
    )
    if len(named) < 2:
        return []
    first_name, first = named[0]
    reference = first.payload
    assert isinstance(reference, Link)  # noqa: S101 - check_links keeps links only
    findings = []
    for name, loaded in named[1:]:
        link = loaded.payload
        assert isinstance(link, Link)  # noqa: S101 - check_links keeps links only
        for kind, mine, theirs in (
            ("materials", link.materials, reference.materials),
            ("products", link.products, reference.products),
        ):
            if mine != theirs:
                changed = sorted(a for a in set(mine) | set(theirs) if mine.get(a) != theirs.get(a))
                shown = ", ".join(changed[:SHOWN]) + (", ..." if len(changed) > SHOWN else "")
                findings.append(
                    f"step {step.name}: {first_name} and {name} are both validly signed by "
                    f"authorized keys but record different {kind} ({shown}): every link of a "
                    "step must give the same answer [links-disagree]"
                )
                break
    return findings


def _roles(layout: Layout) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for step in layout.steps:
        for keyid in step.pubkeys:
            roles.setdefault(keyid, []).append(step.name)
    return roles


def link_products(links: StepLinks) -> dict[str, Any]:
    """The products of a step's first valid link (`check_links` made sure all of them agree)."""
    first = next(iter(links.valid.values()))
    assert isinstance(first.payload, Link)  # noqa: S101 - check_links keeps links only
    return dict(first.payload.products)

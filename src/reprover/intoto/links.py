"""Checking every link file against the layout before in-toto sees it.

Owns: finding the link files of each step (`STEP.KEYID8.link`), parsing them, and checking
each one's signature, signer and `name` ourselves, so that a failure is reported as what it
is (modified after signing, signed by a key the step does not authorize, a key filed under
another key's name, a link of another step renamed, an artifact name that is absolute or
escapes its folder, corrupt), not as in-toto's
"threshold not met"; counting each step's threshold over distinct authorized key material.
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
    parse,
    public_value,
    signature_ok,
)

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
            files[match["step"]].append((path, match["prefix"].lower()))
    result: dict[str, StepLinks] = {}
    findings: list[str] = []
    for step in layout.steps:
        links = StepLinks(step)
        for path, prefix in files[step.name]:
            finding = _check_one(layout, step, path, prefix, roles=roles, links=links)
            if finding:
                findings.append(f"step {step.name}: {path.name}: {finding}")
        findings += _threshold(layout, step, links)
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
    claimed = [k for k in step.pubkeys if k.lower().startswith(prefix) and k in layout.keys]
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
        if signer in step.pubkeys:
            named = claimed[0][:8] if claimed else "an unlisted key"
            return (
                f"signed by key {signer[:8]} but filed as the link of {named}: the same key "
                f"cannot provide two links toward threshold {step.threshold} [same-key-twice]"
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
    distinct = {public_value(layout.keys[k]) for k in links.valid}
    if len(distinct) >= max(step.threshold, 1):
        return []
    missing = [k[:8] for k in step.pubkeys if k not in links.valid]
    expected = ", ".join(f"{step.name}.{k}.link" for k in missing) or "none"
    return [
        f"step {step.name}: needs {step.threshold} link(s) from distinct authorized keys, "
        f"found {len(distinct)} valid; missing or invalid: {expected} [threshold]"
    ]


def _roles(layout: Layout) -> dict[str, list[str]]:
    roles: dict[str, list[str]] = {}
    for step in layout.steps:
        for keyid in step.pubkeys:
            roles.setdefault(keyid, []).append(step.name)
    return roles


def link_products(links: StepLinks) -> dict[str, Any]:
    """The products of a step's first valid link (in-toto checked that all of them agree)."""
    first = next(iter(links.valid.values()))
    assert isinstance(first.payload, Link)  # noqa: S101 - check_links keeps links only
    return dict(first.payload.products)

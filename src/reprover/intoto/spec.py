"""The readable TOML layout specification and its translation into a signed in-toto layout.

Owns: the spec format (see `reprover layout init --guide`): `readme`, `expires_days`, a
`[functionaries]` table naming each public key file, and `[[steps]]` with `name`,
`functionaries`, `threshold`, `expected_command`, `materials` and `products` rule strings;
building the in-toto `Layout` from it with the expiry computed in UTC, and signing it (DSSE
envelope or legacy Metablock).
Does not own: linting the result (`reprover.intoto.lint`) or loading private keys
(`reprover.keys`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import securesystemslib.exceptions as sslib_exceptions
from in_toto.models.layout import Layout, Step
from in_toto.rulelib import unpack_rule
from securesystemslib.signer import Signer

from reprover.errors import InputError
from reprover.intoto.metadata import EXPIRES_FORMAT, load_public_key, serialize, sign

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

DEFAULT_EXPIRES_DAYS = 365
TOP_KEYS = frozenset({"readme", "expires_days", "functionaries", "steps"})
STEP_KEYS = frozenset(
    {"name", "functionaries", "threshold", "expected_command", "materials", "products"}
)


@dataclass(frozen=True)
class StepSpec:
    """One `[[steps]]` entry."""

    name: str
    functionaries: tuple[str, ...]
    threshold: int
    expected_command: tuple[str, ...]
    materials: tuple[str, ...]
    products: tuple[str, ...]


@dataclass(frozen=True)
class LayoutSpec:
    """A parsed spec; `functionaries` maps a role name to its public key file (absolute)."""

    path: Path
    readme: str
    expires_days: int
    functionaries: Mapping[str, Path]
    steps: tuple[StepSpec, ...]


def load_spec(path: Path, keys_dir: Path | None = None) -> LayoutSpec:
    """Read a TOML spec; key paths are relative to `keys_dir`, else to the spec's folder.

    Raises:
        InputError: the file is unreadable, not TOML, or breaks the spec format.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read layout spec {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"layout spec {path} is not valid TOML: {exc}") from exc
    where = f"layout spec {path}"
    _no_unknown(data, TOP_KEYS, where)
    readme = data.get("readme", "")
    expires_days = data.get("expires_days", DEFAULT_EXPIRES_DAYS)
    if not isinstance(readme, str):
        raise InputError(f"{where}: readme must be a string")
    if not isinstance(expires_days, int) or isinstance(expires_days, bool) or expires_days < 1:
        raise InputError(f"{where}: expires_days must be a positive integer")
    base = keys_dir if keys_dir is not None else path.parent
    raw_functionaries = data.get("functionaries", {})
    if not isinstance(raw_functionaries, dict) or not all(
        isinstance(v, str) and v for v in raw_functionaries.values()
    ):
        raise InputError(f"{where}: [functionaries] must map names to public key paths")
    functionaries = {name: base / value for name, value in raw_functionaries.items()}
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise InputError(f"{where}: at least one [[steps]] entry is required")
    steps = tuple(
        _step(raw, functionaries, f"{where}, step {i + 1}") for i, raw in enumerate(raw_steps)
    )
    names = [s.name for s in steps]
    if len(set(names)) != len(names):
        raise InputError(f"{where}: step names must be unique, got {names}")
    return LayoutSpec(path, readme, expires_days, functionaries, steps)


def build_layout(spec: LayoutSpec, *, now: datetime, expires_days: int | None = None) -> Layout:
    """Build the in-toto layout a spec describes, expiring `expires_days` after `now` (UTC).

    Raises:
        InputError: a key file is unusable or a rule is malformed.
    """
    days = spec.expires_days if expires_days is None else expires_days
    if days < 1:
        raise InputError("the layout must expire at least one day from now")
    expires = (now.astimezone(timezone.utc) + timedelta(days=days)).strftime(EXPIRES_FORMAT)
    keys = {role: load_public_key(path) for role, path in spec.functionaries.items()}
    steps = []
    for step in spec.steps:
        try:
            steps.append(
                Step(
                    name=step.name,
                    pubkeys=[keys[role]["keyid"] for role in step.functionaries],
                    threshold=step.threshold,
                    expected_command=list(step.expected_command),
                    expected_materials=[shlex.split(r) for r in step.materials],
                    expected_products=[shlex.split(r) for r in step.products],
                )
            )
        except sslib_exceptions.FormatError as exc:
            raise InputError(f"layout spec {spec.path}, step {step.name!r}: {exc}") from exc
    try:
        return Layout(
            steps=steps,
            inspect=[],
            keys={key["keyid"]: key for key in keys.values()},
            expires=expires,
            readme=spec.readme,
        )
    except sslib_exceptions.FormatError as exc:
        raise InputError(f"layout spec {spec.path}: {exc}") from exc


def signed_layout(
    spec: LayoutSpec,
    signer: Signer,
    *,
    legacy: bool = False,
    expires_days: int | None = None,
    now: datetime | None = None,
) -> bytes:
    """The bytes of the signed layout file for `spec` (DSSE by default, Metablock if `legacy`).

    Raises:
        InputError: as `build_layout`.
    """
    layout = build_layout(spec, now=now or datetime.now(timezone.utc), expires_days=expires_days)
    return serialize(sign(layout, signer, legacy=legacy))


def _step(raw: Any, functionaries: Mapping[str, Path], where: str) -> StepSpec:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must be a table")
    _no_unknown(raw, STEP_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not name or any(c in name for c in "/\\ ") or name[0] == ".":
        raise InputError(f"{where}: name must be a plain word (no '/', spaces or leading '.')")
    where = f"{where} ({name})"
    roles = _strings(raw.get("functionaries", []), f"{where}: functionaries")
    for role in roles:
        if role not in functionaries:
            raise InputError(f"{where}: functionary {role!r} is not in [functionaries]")
    threshold = raw.get("threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise InputError(f"{where}: threshold must be an integer")
    rules = {}
    for kind in ("materials", "products"):
        rules[kind] = _strings(raw.get(kind, ["DISALLOW *"]), f"{where}: {kind}")
        for rule in rules[kind]:
            try:
                unpack_rule(shlex.split(rule))
            except (sslib_exceptions.FormatError, ValueError) as exc:
                raise InputError(f"{where}: {kind} rule {rule!r} is malformed: {exc}") from exc
    command = _strings(raw.get("expected_command", []), f"{where}: expected_command")
    return StepSpec(name, roles, threshold, command, rules["materials"], rules["products"])


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where} must be a list of strings")
    return tuple(value)


def _no_unknown(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")

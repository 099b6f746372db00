"""The `reprover.toml` format: parse, validate, and report precise errors.

Owns: turning a manifest file into a `model.Manifest` with absolute paths (relative paths
resolve against the manifest's folder), and every message about a malformed manifest: the file,
the key and, where it can be found, the line.
Does not own: checking that the paths exist or what policy rule names mean (see
`reprover.policy`); those are checked where they are used.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Mapping
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import Any

from reprover.errors import InputError
from reprover.model import InTotoSpec, Manifest, Policy, Recipe, SourceSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
URL = re.compile(r"^[a-z][a-z0-9+.-]*://|^[\w.-]+@[\w.-]+:")

TABLES: Mapping[str, frozenset[str]] = {
    "source": frozenset({"repo", "commit", "allowed_signers", "gpg_keyring"}),
    "build": frozenset({"command", "env", "output", "timeout", "network", "path"}),
    "release": frozenset({"path", "ignore"}),
    "artifact": frozenset({"path"}),
    "policy": frozenset({"allow"}),
    "signature": frozenset({"trusted", "macho_identifier", "macho_flags", "entitlements"}),
    "in-toto": frozenset({"layout", "layout_keys", "links", "release_step", "inspection_tools"}),
}
REQUIRED = ("source", "build", "release")
_TOML_NAMES: Mapping[type, str] = {
    str: "a string",
    int: "an integer",
    bool: "a boolean",
    list: "an array",
    dict: "a table",
    float: "a float",
}


class _Reader:
    """Typed access to one table, with errors that name the file, the key and the line."""

    def __init__(self, path: Path, text: str, table: str, data: Mapping[str, Any]):
        self.path, self.text, self.table, self.data = path, text, table, data
        known = TABLES[table.split("[", 1)[0]]
        for key in data:
            if key not in known:
                allowed = ", ".join(sorted(known))
                self.fail(key, f"unknown key; expected one of: {allowed}")

    def fail(self, key: str, problem: str) -> None:
        line = _line_of(self.text, key, table=self.table)
        where = f"{self.path}:{line}" if line else str(self.path)
        raise InputError(f"{where}: [{self.table}] {key}: {problem}")

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if key not in self.data:
            if required:
                self.fail(key, "missing required key")
            return default
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            kinds = kind if isinstance(kind, tuple) else (kind,)
            expected = " or ".join(_TOML_NAMES.get(k, k.__name__) for k in kinds)
            got = _TOML_NAMES.get(type(value), type(value).__name__)
            self.fail(key, f"expected {expected}, got {got} {value!r}")
        return value

    def text_value(self, key: str, *, required: bool = False) -> str | None:
        value: str | None = self.get(key, str, required=required)
        if value is not None and not value.strip():
            self.fail(key, "must not be empty")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list, [])
        if not all(isinstance(v, str) and v for v in values):
            self.fail(key, "expected a list of non-empty strings")
        return tuple(values)


def load(path: Path) -> Manifest:
    """Read and validate the manifest at `path`.

    Raises:
        InputError: the file is unreadable, not TOML, or not a valid manifest.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read manifest {path}: {exc.strerror or exc}",
            hint="pass the path of a reprover.toml (see README, 'Manifest reference')",
        ) from exc
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: malformed TOML: {exc}") from exc
    return parse(data, path=path.resolve(), text=text, sha256=hashlib.sha256(raw).hexdigest())


def parse(data: Mapping[str, Any], *, path: Path, text: str, sha256: str) -> Manifest:
    """Validate parsed TOML `data` read from `path` (absolute).

    Raises:
        InputError: a table or key is unknown, missing or of the wrong type.
    """
    for table in data:
        if table not in TABLES:
            raise InputError(
                f"{path}:{_line_of(text, table) or '?'}: unknown table [{table}]; "
                f"expected: {', '.join(TABLES)}"
            )
    for table in REQUIRED:
        if not isinstance(data.get(table), dict):
            raise InputError(f"{path}: missing required table [{table}]")
    base = path.parent
    source = _source(_Reader(path, text, "source", data["source"]), base)
    recipe = _recipe(_Reader(path, text, "build", data["build"]))
    release_table = _Reader(path, text, "release", data["release"])
    release = release_table.text_value("path", required=True)
    artifacts = _artifacts(data.get("artifact", []), path, text)
    signature = _table(data, "signature", path, text)
    ignore = _ignore(release_table, artifacts)
    policy = Policy(
        allow=_table(data, "policy", path, text).strings("allow"),
        trusted_signers=tuple(base / p for p in signature.strings("trusted")),
        macho_identifier=signature.text_value("macho_identifier"),
        macho_flags=signature.get("macho_flags", int),
        entitlements=_source_path(signature, "entitlements"),
    )
    intoto = _intoto(data, path, text, base) if "in-toto" in data else None
    assert release is not None  # noqa: S101 - required=True guarantees it
    return Manifest(
        path=path,
        sha256=sha256,
        source=source,
        recipe=recipe,
        release=base / release,
        artifacts=artifacts,
        policy=policy,
        intoto=intoto,
        release_ignore=ignore,
    )


def _source_path(reader: _Reader, key: str) -> str | None:
    """A relative POSIX path inside the source checkout (no `..`, not absolute)."""
    value = reader.text_value(key)
    if value is not None and (value.startswith("/") or "\\" in value or ".." in value.split("/")):
        reader.fail(key, "expected a relative path inside the source checkout")
    return value


def _ignore(reader: _Reader, artifacts: tuple[str, ...]) -> tuple[str, ...]:
    """The `[release] ignore` glob patterns; none may match a listed artifact."""
    patterns = reader.strings("ignore")
    for pattern in patterns:
        _relative(reader, "ignore", pattern)
        listed = [a for a in artifacts if fnmatchcase(a, pattern)]
        if listed:
            reader.fail("ignore", f"{pattern!r} matches the listed artifact {listed[0]!r}")
    return patterns


def _table(data: Mapping[str, Any], name: str, path: Path, text: str) -> _Reader:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise InputError(f"{path}: [{name}] must be a table")
    return _Reader(path, text, name, value)


def _source(reader: _Reader, base: Path) -> SourceSpec:
    repo = reader.text_value("repo", required=True)
    commit = reader.text_value("commit", required=True)
    assert repo is not None and commit is not None  # noqa: S101 - required=True
    if repo.startswith("-"):
        reader.fail("repo", "must not start with '-'")
    if not FULL_SHA.fullmatch(commit):
        reader.fail(
            "commit",
            f"{commit!r} is not a full commit SHA; branches, tags and short SHAs can move or be "
            "ambiguous. Use the 40-hex id from `git rev-parse <rev>`",
        )
    signers = reader.text_value("allowed_signers")
    keyring = reader.text_value("gpg_keyring")
    if signers and keyring:
        reader.fail("gpg_keyring", "set either allowed_signers (SSH) or gpg_keyring, not both")
    return SourceSpec(
        repo=repo if URL.match(repo) else str((base / repo).resolve()),
        commit=commit,
        allowed_signers=base / signers if signers else None,
        gpg_keyring=base / keyring if keyring else None,
    )


def _recipe(reader: _Reader) -> Recipe:
    command = reader.get("command", (list, str), required=True)
    if isinstance(command, list):
        if not command or not all(isinstance(a, str) for a in command) or not command[0]:
            reader.fail("command", "expected a non-empty list of strings (argv)")
        command = tuple(command)
    elif not command.strip():
        reader.fail("command", "must not be empty")
    env = reader.get("env", dict, {})
    for key, value in env.items():
        if not isinstance(value, str) or not key or "=" in key:
            reader.fail("env", f'{key!r}: expected NAME = "string"')
    output = reader.text_value("output") or "out"
    _relative(reader, "output", output)
    timeout = reader.get("timeout", int, 1800)
    if timeout <= 0:
        reader.fail("timeout", "must be a positive number of seconds")
    build_path = reader.text_value("path")
    if build_path is not None and not PurePosixPath(build_path).is_absolute():
        reader.fail(
            "path", "the build path must be absolute (it is recorded so others can repeat it)"
        )
    return Recipe(
        command=command,
        env=dict(env),
        output=output,
        timeout=timeout,
        network=reader.get("network", bool, False),
        path=build_path,
    )


def _artifacts(entries: Any, path: Path, text: str) -> tuple[str, ...]:
    if not isinstance(entries, list):
        raise InputError(f"{path}: artifact must be an array of tables: [[artifact]]")
    paths = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError(f"{path}: [[artifact]] entry {index + 1} must be a table")
        reader = _Reader(path, text, f"artifact[{index + 1}]", entry)
        value = reader.text_value("path", required=True)
        assert value is not None  # noqa: S101 - required=True
        _relative(reader, "path", value)
        paths.append(value)
    if len(set(paths)) != len(paths):
        raise InputError(f"{path}: [[artifact]] lists the same path twice")
    return tuple(paths)


def _intoto(data: Mapping[str, Any], path: Path, text: str, base: Path) -> InTotoSpec:
    reader = _table(data, "in-toto", path, text)
    layout = reader.text_value("layout", required=True)
    links = reader.text_value("links", required=True)
    keys = reader.strings("layout_keys")
    if not keys:
        reader.fail("layout_keys", "list at least one public key that signs the layout")
    release_step = reader.text_value("release_step")
    tools = reader.text_value("inspection_tools")
    assert layout is not None and links is not None  # noqa: S101 - required=True
    return InTotoSpec(
        layout=base / layout,
        layout_keys=tuple(base / k for k in keys),
        links=base / links,
        release_step=release_step,
        inspection_tools=base / tools if tools else None,
    )


def _relative(reader: _Reader, key: str, value: str) -> None:
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or "\\" in value:
        reader.fail(key, f"{value!r} must be a relative path without '..'")


def _line_of(text: str, key: str, *, table: str | None = None) -> int | None:
    """The line that assigns `key` (inside `table` when given) or opens table `key` (1-based).

    Best effort: TOML allows spellings (dotted keys, inline tables) this does not follow.
    """
    start = 0
    if table is not None:
        name, _, index = table.partition("[")
        headers = list(re.finditer(rf"^\s*\[\[?\s*{re.escape(name)}\s*\]\]?", text, re.MULTILINE))
        nth = int(index.rstrip("]")) - 1 if index else 0
        if nth < len(headers):
            start = headers[nth].end()
    pattern = re.compile(
        rf"^\s*(\[\[?\s*{re.escape(key)}\s*\]\]?|\"?{re.escape(key)}\"?\s*=)", re.MULTILINE
    )
    match = pattern.search(text, start) or pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None

"""Git: pin the source to a full commit, verify its signature, check it out cleanly.

Owns: cloning with `--no-local` into a fresh folder (the user's work tree is never touched),
checking out exactly one commit, verifying an SSH or GPG commit signature against keys the
manifest pins, and recording repo, commit, tree id and committer time.
Does not own: building (see `reprover.build`).

Every git call runs with the user's and the system's git configuration switched off, hooks and
fsmonitor off, and a private, empty HOME, so that local settings (line endings, filters, signing
programs, a keyring planted in a shared folder) cannot change what is checked out or which keys
are trusted. Only full SHAs validated by the manifest are ever passed to git. A signature is
checked only by the tool its pin names: `allowed_signers` accepts SSH signatures only,
`gpg_keyring` GPG (OpenPGP) signatures only, each with a fresh private GNUPGHOME; any other
kind (X.509, or the other of the two) is refused with the reason.

reprover runs git itself (no GitPython): a handful of plumbing commands whose environment and
arguments are fully controlled here, without a second way into the repository to keep safe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from reprover.errors import InputError, ToolMissingError, VerificationError
from reprover.model import SourcePin, SourceSpec
from reprover.workarea import private_folder

GIT_TIMEOUT = 600
SAFE_CONFIG = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false")
SIGNATURE_KINDS = {
    b"-----BEGIN SSH SIGNATURE-----": "SSH",
    b"-----BEGIN PGP SIGNATURE-----": "GPG",
    b"-----BEGIN SIGNED MESSAGE-----": "X.509",
}


def git_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment for git that ignores user and system configuration; `home` is private."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "GNUPGHOME": str(home / "gnupg-unused"),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ADVICE": "0",
    }
    env.update(extra)
    return env


def _git(args: list[str], *, env: dict[str, str], cwd: Path | None = None) -> str:
    """Run git; return stdout. Raises ToolMissingError or subprocess.CalledProcessError."""
    if shutil.which("git") is None:
        raise ToolMissingError("git is not installed", hint="install git (apt-get install git)")
    done = subprocess.run(
        ["git", *SAFE_CONFIG, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=GIT_TIMEOUT,
        check=True,
    )
    return done.stdout


def checkout(spec: SourceSpec, dest: Path) -> SourcePin:
    """Clone `spec.repo` into the new folder `dest` and check out `spec.commit` detached.

    Args:
        spec: where the source lives and which commit (a full SHA) to pin.
        dest: a folder that must not exist yet; it is created.

    Returns:
        The pinned source, with the signer when a signature was required and verified.

    Raises:
        InputError: the repository cannot be cloned or does not contain the commit.
        VerificationError: a signature is required and is missing, bad, or by an unlisted key.
        ToolMissingError: git (or gpg, for a GPG keyring) is not installed.
    """
    with private_folder("reprover-git-") as home:
        return _checkout(spec, dest, git_env(home), home)


def _checkout(spec: SourceSpec, dest: Path, env: dict[str, str], home: Path) -> SourcePin:
    try:
        _git(
            ["clone", "--quiet", "--no-local", "--no-checkout", "--", spec.repo, str(dest)],
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        raise InputError(
            f"cannot clone {spec.repo}: {_last_line(exc.stderr)}",
            hint="check [source] repo: a local path (relative to the manifest) or a URL",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise InputError(f"cloning {spec.repo} took longer than {GIT_TIMEOUT} s") from exc
    try:
        kind = _git(["cat-file", "-t", spec.commit], cwd=dest, env=env).strip()
    except subprocess.CalledProcessError:
        kind = ""
    if kind != "commit":
        raise InputError(
            f"commit {spec.commit} does not exist in {spec.repo}"
            + (f" (it is a {kind})" if kind else ""),
            hint="the commit must be reachable from a branch or tag of the repository",
        )
    signer = _verify_signature(spec, dest, env, home)
    try:
        _git(
            ["-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", spec.commit],
            cwd=dest,
            env=env,
        )
    except subprocess.CalledProcessError as exc:
        raise InputError(f"cannot check out {spec.commit}: {_last_line(exc.stderr)}") from exc
    tree, committer_time = _git(
        ["show", "-s", "--format=%T %ct", spec.commit], cwd=dest, env=env
    ).split()
    return SourcePin(
        repo=spec.repo,
        commit=spec.commit,
        tree=tree,
        committer_time=int(committer_time),
        signer=signer,
    )


def read_committed(repo: Path, commit: str, path: str) -> bytes:
    """The bytes of the file `path` as committed in `commit` (from git's objects, not the tree).

    Raises:
        InputError: the commit holds no regular file at `path`.
        ToolMissingError: git is not installed.
    """
    spec = f"{commit}:{path}"
    with private_folder("reprover-git-") as home:
        env = git_env(home)
        try:
            kind = _git(["cat-file", "-t", spec], cwd=repo, env=env).strip()
        except subprocess.CalledProcessError:
            kind = ""
        if kind != "blob":
            raise InputError(
                f"commit {commit[:12]} has no file {path!r} (for [signature] entitlements)"
            )
        done = subprocess.run(
            ["git", *SAFE_CONFIG, "cat-file", "blob", spec], cwd=repo, env=env,
            capture_output=True, timeout=GIT_TIMEOUT, check=True,
        )  # fmt: skip
    return done.stdout


def _verify_signature(spec: SourceSpec, repo: Path, env: dict[str, str], home: Path) -> str | None:
    """Return a description of the verified signer, None when no signature is required.

    Raises:
        InputError: the pinned key file is missing or cannot be imported.
        VerificationError: the commit is unsigned, signed with the wrong kind, or not by a pin.
        ToolMissingError: gpg is needed and missing.
    """
    if spec.allowed_signers is None and spec.gpg_keyring is None:
        return None
    wanted = "SSH" if spec.allowed_signers is not None else "GPG"
    kind = signature_kind(_git(["cat-file", "commit", spec.commit], cwd=repo, env=env))
    if kind is None:
        raise VerificationError(
            f"commit {spec.commit}: the commit is not signed",
            hint="a signed commit by one of the keys the manifest lists is required",
        )
    if kind != wanted:
        pin = "allowed_signers (SSH)" if wanted == "SSH" else "gpg_keyring (GPG)"
        raise VerificationError(
            f"commit {spec.commit}: it carries a {kind} signature, but the manifest pins {pin}; "
            f"only a {wanted} signature by a pinned key counts",
            hint="sign the commit with a key of the kind the manifest pins",
        )
    if spec.allowed_signers is not None:
        signers = spec.allowed_signers.resolve()
        if not signers.is_file():
            raise InputError(f"allowed_signers file {signers} does not exist")
        config = ["-c", f"gpg.ssh.allowedSignersFile={signers}"]
        return _verify(repo, spec.commit, config, env)
    assert spec.gpg_keyring is not None  # noqa: S101 - one of the two is set (checked above)
    if shutil.which("gpg") is None:
        raise ToolMissingError("gpg is not installed", hint="apt-get install gnupg")
    keyring = spec.gpg_keyring.resolve()
    if not keyring.is_file():
        raise InputError(f"gpg_keyring file {keyring} does not exist")
    gnupg = home / "gnupg"
    gnupg.mkdir(mode=0o700)
    # The keyring is the pin: every key in it is trusted, no others exist here.
    (gnupg / "gpg.conf").write_text("trust-model always\n")
    gpg_env = {**env, "GNUPGHOME": str(gnupg)}
    imported = subprocess.run(
        ["gpg", "--batch", "--quiet", "--import", str(keyring)],
        env=gpg_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if imported.returncode != 0:
        raise InputError(f"cannot import {keyring}: {_last_line(imported.stderr)}")
    return _verify(repo, spec.commit, [], gpg_env)


def signature_kind(commit_object: str) -> str | None:
    """The kind of the commit's signature ("SSH", "GPG", "X.509", "unknown"), None if unsigned.

    Reads the `gpgsig` (or `gpgsig-sha256`) header of the raw commit object.
    """
    headers = commit_object.split("\n\n", 1)[0]
    for line in headers.split("\n"):
        name, _, value = line.partition(" ")
        if name in ("gpgsig", "gpgsig-sha256"):
            start = value.strip().encode()
            return next((k for m, k in SIGNATURE_KINDS.items() if start.startswith(m)), "unknown")
    return None


def _verify(repo: Path, commit: str, config: list[str], env: dict[str, str]) -> str:
    try:
        _git([*config, "verify-commit", commit], cwd=repo, env=env)
    except subprocess.CalledProcessError as exc:
        status = _git([*config, "show", "-s", "--format=%G?", commit], cwd=repo, env=env).strip()
        reason = {
            "N": "the commit is not signed",
            "B": "the signature is bad",
            "U": "the signature is valid but by a key of unknown validity",
            "E": "the signature cannot be checked: the key is not among the trusted keys",
            "X": "the signature has expired",
            "Y": "the signature was made by an expired key",
            "R": "the signature was made by a revoked key",
        }.get(status, f"verification failed ({_last_line(exc.stderr)})")
        raise VerificationError(
            f"commit {commit}: {reason}",
            hint="a signed commit by one of the keys the manifest lists is required",
        ) from exc
    fields = _git([*config, "show", "-s", "--format=%G?%n%GS%n%GF", commit], cwd=repo, env=env)
    status, signer, fingerprint = [*fields.splitlines(), "", "", ""][:3]
    if status != "G":
        raise VerificationError(f"commit {commit}: signature status {status!r}, not good")
    return f"{signer} ({fingerprint})" if signer else fingerprint


def _last_line(text: str | None) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no message"

"""The build is the adversary (#11): each test is a hostile repository whose build tries one
attack, verified through the real CLI, as the invoking user and (when that is root, as in CI)
as an unprivileged user. Each attack must end in a non-pass naming it, or be harmless: nothing
outside the checkout changes and the honest part of the build still verifies.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_runner import MODES, Hostile, hostile_for

from conftest import git

pytestmark = pytest.mark.slow


@pytest.fixture(params=MODES)
def hostile(request: pytest.FixtureRequest) -> Iterator[Hostile]:
    """A folder for one hostile project, run as the invoker or as an unprivileged user."""
    found = hostile_for(request.param)
    yield found
    shutil.rmtree(found.root, ignore_errors=True)


def _json(out: str) -> dict:  # type: ignore[type-arg]
    return json.loads(out)  # type: ignore[no-any-return]


def _no_weak_sandbox(hostile: Hostile) -> dict[str, str]:
    """An environment whose `bwrap` always fails, so that only weak isolation is left."""
    fake = hostile.root / "no-bwrap"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    return {"PATH": f"{fake}:/usr/local/bin:/usr/bin:/bin"}


def _survivors(marker: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


# --- forged pass: the output folder or an artifact points at the release --------------------


def test_output_folder_linked_to_the_release_is_refused(hostile: Hostile) -> None:
    """The build finds the release (here: it knows the path) and makes `out` a link to it."""
    release = hostile.root / "release"
    hostile.create(
        "make\n"
        "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\"; echo; done >/dev/null 2>&1\n"
        f"rm -rf out && ln -sfn {release} out\n"
    )
    code, out, _ = hostile.cli("verify", hostile.manifest(), "--strict", "--format", "json")
    assert code == 1, out
    report = _json(out)
    [check] = [c for c in report["checks"] if c["name"] == "build-outputs"]
    assert check["passed"] is False
    assert "out is a symbolic link" in check["detail"]
    assert [a["verdict"] for a in report["artifacts"]] == ["missing"]


def test_artifact_linked_to_the_release_is_refused(hostile: Hostile) -> None:
    release = hostile.root / "release"
    hostile.create(f"make && ln -sfn {release}/hello out/hello\n")
    code, out, _ = hostile.cli("verify", hostile.manifest(), "--format", "json")
    assert code == 1
    [artifact] = _json(out)["artifacts"]
    assert artifact["verdict"] == "missing"
    assert any("hello is a symbolic link" in note for note in artifact["notes"])


def test_rebuild_link_is_never_signed_over_linked_outputs(hostile: Hostile) -> None:
    """`reprover rebuild` must not sign, as products, bytes the build did not make."""
    release = hostile.root / "release"
    hostile.create(f"make && ln -sfn {release}/hello out/hello\n")
    (hostile.root / "keys").mkdir()
    manifest = hostile.manifest()
    assert hostile.cli("key", "new", "rb1", "-d", hostile.root / "keys", "-q")[0] == 0
    out = hostile.root / "rebuilt"
    code, _, err = hostile.cli("rebuild", manifest, "--link-key", hostile.root / "keys" / "rb1.pem",
                               "-o", out)  # fmt: skip
    assert code == 2
    assert "symbolic link" in err
    assert not out.exists() or not list(out.glob("*.link"))


# --- repository code outside the sandbox ------------------------------------------------------


def test_toolchain_fingerprint_runs_inside_the_sandbox(hostile: Hostile) -> None:
    """The recipe puts the repository's own `make` first on PATH; `--version` must run confined."""
    marker = hostile.root / "ran-outside-the-sandbox"
    fake_make = f'#!/bin/sh\necho pwned > {marker} 2>/dev/null\nexec /usr/bin/make "$@"\n'
    hostile.create("make\n", files={"tools/make": fake_make})
    build = hostile.root / "build"
    command = f'["make"]\nenv = {{ PATH = "{build}/tools:/usr/bin:/bin" }}'
    code, out, err = hostile.cli("verify", hostile.manifest(command=command), "--format", "json")
    assert code == 0, err
    assert not marker.exists()
    assert _json(out)["build"]["toolchain"]["make"].startswith("GNU Make")


def test_build_cannot_plant_git_config_for_the_verifiers_git(hostile: Hostile) -> None:
    """`.git` is read-only in the sandbox: no fsmonitor for `reprover rebuild`'s git status."""
    marker = hostile.root / "git-ran-our-command"
    hostile.create(
        f'git config core.fsmonitor "touch {marker}" 2>/dev/null\n'
        f"printf '[core]\\n\\tfsmonitor = touch {marker}\\n' >> .git/config 2>/dev/null\n"
        "make\n"
    )
    (hostile.root / "keys").mkdir()
    manifest = hostile.manifest()
    assert hostile.cli("key", "new", "rb1", "-d", hostile.root / "keys", "-q")[0] == 0
    code, _, err = hostile.cli("rebuild", manifest, "--link-key", hostile.root / "keys" / "rb1.pem",
                               "-o", hostile.root / "rebuilt")  # fmt: skip
    assert code == 0, err
    assert not marker.exists()


# --- escape as root, trust inputs read after the build ----------------------------------------


def test_proc_root_of_other_processes_is_out_of_reach(hostile: Hostile) -> None:
    """The build writes through /proc/<pid>/root to replace the pinned CA: nothing changes."""
    ca = hostile.root / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\npinned\n-----END CERTIFICATE-----\n")
    original = ca.read_bytes()
    hostile.create(
        "make\n"
        f'for r in /proc/[0-9]*/root; do cp out/hello "$r{ca}" 2>/dev/null; done\n'
        f"cp out/hello /proc/1/root{ca} 2>/dev/null\n"
        f"cp out/hello {ca} 2>/dev/null\n"
        "true\n"
    )
    manifest = hostile.manifest(extra='[signature]\ntrusted = ["ca.pem"]\n')
    code, out, err = hostile.cli("verify", manifest, "--format", "json")
    assert code == 0, err
    assert ca.read_bytes() == original
    assert _json(out)["snapshot"] == {"signature: ca.pem": hashlib.sha256(original).hexdigest()}


def test_root_cannot_change_kernel_settings(hostile: Hostile) -> None:
    """Sysctls are guarded by file mode only: root without capabilities could still set
    `kernel.core_pattern` (a program run as root outside on the next crash). The build writes
    back the value it read, so a failed defence changes nothing but fails the test."""
    hostile.create(
        "v=$(cat /proc/sys/kernel/core_pattern)\n"
        "if printf '%s\\n' \"$v\" > /proc/sys/kernel/core_pattern; then exit 42; fi\n"
        "if echo h > /proc/sysrq-trigger; then exit 43; fi\n"
        "make\n"
    )
    code, _, err = hostile.cli("verify", hostile.manifest())
    assert code == 0, err


def test_root_only_system_files_stay_hidden(hostile: Hostile) -> None:
    """As root the build keeps root's file access: TLS private keys under /etc/ssl must not
    be readable (a `reprover rebuild` would publish what the build embeds)."""
    hostile.create(
        'if [ -n "$(ls -A /etc/ssl/private 2>/dev/null)" ]; then exit 42; fi\n'
        "if [ -r /etc/shadow ]; then exit 43; fi\n"
        "if [ -e /etc/ssl/private ] && ! grep -q ' /etc/ssl/private tmpfs ' /proc/self/mounts\n"
        "then exit 44; fi\nmake\n"
    )
    code, _, err = hostile.cli("verify", hostile.manifest())
    assert code == 0, err


def test_trust_inputs_are_read_before_the_build(hostile: Hostile) -> None:
    """Under weak isolation the build can overwrite the pinned CA: the verdict never reads it."""
    ca = hostile.root / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\npinned\n-----END CERTIFICATE-----\n")
    original = ca.read_bytes()
    hostile.create(f"make && echo forged-ca > {ca}\n")
    manifest = hostile.manifest(extra='[signature]\ntrusted = ["ca.pem"]\n')
    env = _no_weak_sandbox(hostile)
    hostile.give_away()
    code, out, err = hostile.cli(
        "verify", manifest, "--format", "json", "--allow-weak-isolation", env=env
    )
    assert code == 0, err
    assert ca.read_text() == "forged-ca\n"  # the attack ran: the build could see the file
    report = _json(out)
    assert report["snapshot"] == {"signature: ca.pem": hashlib.sha256(original).hexdigest()}
    assert report["build"]["weak_isolation"] is True
    assert "WEAK isolation" in err


def test_weak_isolation_is_inconclusive_unless_accepted(hostile: Hostile) -> None:
    hostile.create("make\n")
    manifest = hostile.manifest()
    code, out, err = hostile.cli("verify", manifest, env=_no_weak_sandbox(hostile))
    assert code == 3
    assert "verdict: INCONCLUSIVE" in out
    assert "strong build sandbox is unavailable" in out
    assert "strong build sandbox is unavailable" in err
    assert "--allow-weak-isolation" in err


def test_snapshot_tampered_under_weak_isolation_fails(hostile: Hostile) -> None:
    """The build finds the verifier's private copies (weak isolation) and makes them match."""
    tmp = hostile.root / "tmp"
    hostile.create(
        f"make\nfor f in {tmp}/reprover-run-*/snapshot/release/hello; do\n"
        '  cp out/hello "$f"\n'
        "done\n"
    )
    (hostile.root / "release" / "hello").write_bytes(b"the vendor's backdoored engine")
    manifest = hostile.manifest()
    env = _no_weak_sandbox(hostile)
    hostile.give_away()
    code, out, _ = hostile.cli(
        "verify", manifest, "--format", "json", "--allow-weak-isolation", env=env
    )
    assert code == 1
    [check] = [c for c in _json(out)["checks"] if c["name"] == "trust-snapshot"]
    assert check["passed"] is False


# --- survivors ----------------------------------------------------------------------------------


def test_build_daemon_does_not_survive_the_build(hostile: Hostile) -> None:
    seconds = str(3_000_000 + secrets.randbelow(10**6))
    hostile.create(f"make\nsetsid sleep {seconds} >/dev/null 2>&1 &\n(sleep {seconds} &)\nexit 0\n")
    code, _, err = hostile.cli("verify", hostile.manifest())
    assert code == 0, err
    assert _survivors(f"sleep\0{seconds}") == []


def test_build_that_never_exits_is_killed_with_its_children(hostile: Hostile) -> None:
    seconds = str(4_000_000 + secrets.randbelow(10**6))
    hostile.create(f"setsid sleep {seconds} &\nsleep {seconds}\n")
    path = hostile.manifest()
    path.write_text(path.read_text().replace("timeout = 120", "timeout = 3"))
    code, _, err = hostile.cli("verify", path)
    assert code == 3
    assert "exceeded its timeout of 3 s" in err
    assert _survivors(f"sleep\0{seconds}") == []


# --- predictable paths ----------------------------------------------------------------------


def test_links_planted_at_the_old_fixed_paths_are_never_followed(hostile: Hostile) -> None:
    """Another user plants links where reprover used to put its log, lock and checkout."""
    victim = hostile.root / "victim.txt"
    victim.write_text("root-owned precious data\n")
    victim_dir = hostile.root / "victim-dir"
    victim_dir.mkdir()
    hostile.create("make\n")
    build = hostile.root / "build"
    for planted in (Path(f"{build}.log"), Path(f"{build}.reprover-lock")):
        planted.symlink_to(victim)
    build.symlink_to(victim_dir)
    code, _, err = hostile.cli("verify", hostile.manifest())
    assert code == 0, err
    assert victim.read_text() == "root-owned precious data\n"
    assert list(victim_dir.iterdir()) == []
    assert build.is_symlink()


# --- signature pin bypass ---------------------------------------------------------------------


def _gpg_home(home: Path, email: str) -> str:
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gen = ["gpg", "--batch", "--quiet", "--passphrase", "", "--quick-gen-key", email, "ed25519"]
    subprocess.run([*gen, "sign", "never"], env=env, check=True, capture_output=True)
    listing = subprocess.run(
        ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
        env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))


def test_gpg_signature_does_not_satisfy_an_ssh_pin(hostile: Hostile) -> None:
    """A keyring planted at $TMPDIR/.gnupg vouches for a GPG-signed commit; the pin is SSH."""
    planted = hostile.root / "tmp" / ".gnupg"
    fingerprint = _gpg_home(planted, "ada@vendor.example")
    hostile.create("make\n")
    repo = hostile.project.repo
    git(repo, "-c", f"user.signingkey={fingerprint}", "commit", "--quiet", "--allow-empty", "-S",
        "-m", "signed", env={"GNUPGHOME": str(planted)})  # fmt: skip
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(planted)},
                   check=False)  # fmt: skip
    commit = git(repo, "rev-parse", "HEAD")
    (planted / "gpg.conf").write_text("trust-model always\n")
    key = hostile.root / "vendor_ssh"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    kind, value = key.with_suffix(".pub").read_text().split()[:2]
    (hostile.root / "allowed_signers").write_text(f"ada@vendor.example {kind} {value}\n")
    body = hostile.project.manifest(commit=commit).read_text()
    body = body.replace("[build]", 'allowed_signers = "allowed_signers"\n[build]')
    manifest = hostile.root / "reprover.toml"
    manifest.write_text(body)
    hostile.give_away()
    code, out, _ = hostile.cli("verify", manifest, "--format", "json")
    assert code == 1, out
    [check] = _json(out)["checks"]
    assert check["name"] == "source-signature"
    assert "carries a GPG signature, but the manifest pins allowed_signers (SSH)" in check["detail"]


# --- attacks not listed in the issue ----------------------------------------------------------


def test_verifier_environment_is_invisible(hostile: Hostile) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    hostile.create(
        f"if env | grep -q {secret} || grep -qs {secret} /proc/[0-9]*/environ; then exit 42; fi\n"
        "make\n"
    )
    code, _, err = hostile.cli("verify", hostile.manifest(), env={"API_TOKEN": secret})
    assert code == 0, err


def test_inherited_descriptors_do_not_reach_the_build(hostile: Hostile) -> None:
    secret = f"s3cr3t-{secrets.token_hex(8)}"
    hostile.create(
        "for f in /proc/self/fd/*; do\n"
        f'  [ -f "$f" ] && grep -qs {secret} "$f" && exit 42\n'
        "done\nmake\n"
    )
    manifest = hostile.manifest()
    secret_file = hostile.root / "secret.txt"
    secret_file.write_text(secret)
    fd = os.open(secret_file, os.O_RDONLY)
    try:
        code, _, err = hostile.cli("verify", manifest, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert code == 0, err


def test_verifier_process_is_invisible_to_the_build(hostile: Hostile) -> None:
    """No /proc entry of the verifier: nothing to signal, ptrace, or read a command line from."""
    name = f"hostile-{secrets.token_hex(8)}.toml"
    hostile.create(
        f"grep -qs {name} /proc/[0-9]*/cmdline && exit 42\nkill -9 -1 2>/dev/null\nmake\n"
    )
    manifest = hostile.manifest(name=name)
    code, _, err = hostile.cli("verify", manifest)
    assert code == 0, err


def test_release_manifest_and_home_are_invisible(hostile: Hostile) -> None:
    home_secret = hostile.root / "home" / ".ssh-key"
    home_secret.write_text("private key\n")
    release = hostile.root / "release"
    hostile.create(
        f"for p in {release}/hello {hostile.root}/reprover.toml {home_secret} "
        f"{hostile.root}/repo; do\n"
        '  [ -e "$p" ] && { echo "saw $p"; exit 42; }\n'
        "done\nmake\n"
    )
    code, _, err = hostile.cli("verify", hostile.manifest())
    assert code == 0, err


def test_output_hard_linked_to_the_release_is_refused(hostile: Hostile) -> None:
    """Weak isolation shows the release: a hard link would make the rebuild 'identical'."""
    release = hostile.root / "release"
    hostile.create(f"make && ln -f {release}/hello out/hello\n")
    manifest = hostile.manifest()
    env = _no_weak_sandbox(hostile)
    hostile.give_away()
    code, out, _ = hostile.cli(
        "verify", manifest, "--format", "json", "--allow-weak-isolation", env=env
    )
    assert code == 1, out
    [artifact] = _json(out)["artifacts"]
    assert artifact["verdict"] == "missing"
    assert any("2 hard links" in note for note in artifact["notes"])


def test_fifo_as_an_artifact_is_refused(hostile: Hostile) -> None:
    hostile.create("make && rm out/hello && mkfifo out/hello\n")
    code, out, _ = hostile.cli("verify", hostile.manifest(), "--format", "json")
    assert code == 1
    [artifact] = _json(out)["artifacts"]
    assert artifact["verdict"] == "missing"
    assert any("FIFO" in note for note in artifact["notes"])


def test_sparse_terabyte_artifact_is_refused_unread(hostile: Hostile) -> None:
    """A 1 TiB sparse output costs the build nothing; reading and copying it would fill a disk."""
    hostile.create("make && truncate -s 1T out/hello\n")
    code, out, _ = hostile.cli("verify", hostile.manifest(), "--format", "json")
    assert code == 1
    [artifact] = _json(out)["artifacts"]
    assert artifact["verdict"] == "missing"
    assert any("1099511627776 bytes" in note and "not read" in note for note in artifact["notes"])


def test_huge_build_log_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A build printing without end cannot fill the disk through its log."""
    from reprover import build
    from reprover.cli import main

    monkeypatch.setattr(build, "LOG_LIMIT", 1 << 20)
    hostile = Hostile(tmp_path, "invoker")
    hostile.create("head -c 20000000 /dev/zero | tr '\\0' x\nmake\n")
    assert main(["verify", str(hostile.manifest())]) == 0
    [log] = re.findall(r"build log: (\S+)", capsys.readouterr().err)
    text = Path(log).read_bytes()
    assert len(text) < (1 << 20) + 200
    assert b"further bytes of build output dropped" in text
    shutil.rmtree(Path(log).parent)


# --- #19.3: one snapshot of bytes for every check -------------------------------------------


def test_release_swapped_between_comparison_and_in_toto_check_fails(tmp_path: Path) -> None:
    """The vendor's links name a backdoored `scan` (B); the release shows the honest build (A)
    while it is compared, then B while the in-toto check runs. Every check must see A."""
    from conftest import make_repo
    from intoto_chain import SOURCE, make_chain, record
    from reprover.verify import Options, verify
    from reprover.verify.options import ProgressEvent

    chain = make_chain(tmp_path / "chain", dsse=True)
    honest = (chain.release / "scan").read_bytes()
    sign = chain.root / "sign"
    shutil.rmtree(sign / "out")
    (sign / "out").mkdir()
    backdoored = sign / "out" / "scan"
    backdoored.write_bytes(honest + b"backdoor")  # the layout lets `sign` modify the file
    chain.link("sign", "signer").unlink()
    record("sign", sign, chain.keys, "signer", chain.links, dsse=True, inputs="in")
    repo = tmp_path / "repo"
    commit = make_repo(repo, SOURCE)
    manifest = tmp_path / "reprover.toml"
    manifest.write_text(
        f'[source]\nrepo = "repo"\ncommit = "{commit}"\n'
        '[build]\ncommand = ["sh", "-c", "mkdir -p out && cc -O2 -o out/scan main.c"]\n'
        'timeout = 120\n[release]\npath = "chain/release"\n'
        '[in-toto]\nlayout = "chain/root.layout"\nlayout_keys = ["chain/keys/owner.pub.pem"]\n'
        'links = "chain/links"\n'
    )
    swapped = []

    def swap_before_in_toto(event: ProgressEvent) -> None:
        if event.stage == "in-toto" and event.message and not swapped:
            (chain.release / "scan").write_bytes(backdoored.read_bytes())
            swapped.append(True)

    report = verify(manifest, Options(), events=swap_before_in_toto)
    assert swapped
    assert [a.verdict.value for a in report.artifacts] == ["identical"]
    assert report.artifacts[0].released is not None
    assert report.artifacts[0].released.sha256 == hashlib.sha256(honest).hexdigest()
    [check] = [c for c in report.checks if c.name == "in-toto"]
    assert not check.passed
    assert "scan" in " ".join(check.findings)
    assert report.verdict.value == "fail"
    # Had the in-toto check read the swapped file, it would have passed: B is the sign product.
    again = verify(manifest, Options())
    assert [a.verdict.value for a in again.artifacts] == ["different"]
    assert [c.passed for c in again.checks if c.name == "in-toto"] == [True]

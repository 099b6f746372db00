"""An independent implementation accepts reprover's log: Go's golang.org/x/mod/sumdb/tlog and note.

`tests/interop/tlogcheck.go` is built offline against Debian's golang-golang-x-mod-dev (CI
installs golang-go and it, see .ci/apt-packages.txt). It opens reprover's checkpoint with Go's
note verifier, authenticates every tile against the signed root with Go's TileHashReader,
recomputes every entry's record hash, proves and checks inclusion of every entry and
consistency with an older checkpoint, and checks reprover's proof files. The other way round,
reprover verifies a note Go signed.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from reprover.errors import VerificationError
from reprover.tlog import note
from tlog_support import Cli, append, make_key, make_log

HERE = Path(__file__).resolve().parent
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="session")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("go") is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        pytest.skip("needs golang-go and golang-golang-x-mod-dev (see .ci/apt-packages.txt)")
    out = tmp_path_factory.mktemp("go")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(out),
        "GO111MODULE": "off",
        "GOPATH": str(GOPATH),
        "GOCACHE": str(out / "cache"),
        "GOFLAGS": "",
        "GOPROXY": "off",
    }
    binary = out / "tlogcheck"
    subprocess.run(
        ["go", "build", "-o", str(binary), str(HERE / "interop" / "tlogcheck.go")],
        cwd=out, env=env, check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return binary


def _go(binary: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *map(str, args)], capture_output=True, text=True, check=False, timeout=300
    )


@pytest.mark.slow
def test_go_accepts_checkpoint_tiles_entries_and_consistency(
    run_cli: Cli, tmp_path: Path, tlogcheck: Path
) -> None:
    log = make_log(run_cli, tmp_path, entries=3)
    old = tmp_path / "old.checkpoint"
    old.write_bytes((log.logdir / "checkpoint").read_bytes())
    big = bytes(range(256)) * 400  # over 65535 bytes: logged as its digest record
    append(run_cli, log, [b"x%d" % i for i in range(600)] + [big])
    wkey = make_key(run_cli, tmp_path / "keys", "witness")
    code, _, err = run_cli(
        "log", "witness", log.logdir, "--vkey", log.vkey, "--key", wkey,
        "--name", "auditor.example/w1", "--since", old,
    )  # fmt: skip
    assert code == 0, err  # Go must ignore the cosignature line it does not know
    done = _go(tlogcheck, "log", log.logdir, log.vkey, old)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok log 604 ")
    for index in (0, 257, 603):
        proof = tmp_path / f"p{index}.json"
        assert run_cli("log", "prove", log.logdir, log.files[index], "-o", proof)[0] == 0
        done = _go(tlogcheck, "proof", proof, log.files[index], log.vkey)
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"ok proof {index} 604\n"
        done = _go(tlogcheck, "proof", proof, log.files[index + 1 if index < 603 else 0], log.vkey)
        assert done.returncode == 1


def test_go_rejects_what_reprover_rejects(run_cli: Cli, tmp_path: Path, tlogcheck: Path) -> None:
    """The Go checker is not a rubber stamp: a flipped tile byte or another key fails there too."""
    log = make_log(run_cli, tmp_path, entries=300)
    other = make_log(run_cli, tmp_path / "other", entries=0)
    assert _go(tlogcheck, "log", log.logdir, other.vkey).returncode == 1
    tile = log.logdir / "tile/0/000"
    data = bytearray(tile.read_bytes())
    data[5] ^= 1
    tile.write_bytes(bytes(data))
    done = _go(tlogcheck, "log", log.logdir, log.vkey)
    assert done.returncode == 1
    assert run_cli("log", "audit", log.logdir, "--vkey", log.vkey)[0] == 1


def test_reprover_verifies_a_note_go_signed(tlogcheck: Path) -> None:
    done = _go(tlogcheck, "sign", "go.example/log", "go.example/log\n1\n" + "A" * 43 + "=\n")
    assert done.returncode == 0, done.stderr
    vkey, signed = done.stdout.split("\n")
    verifier = note.parse_vkey(vkey)
    message = base64.b64decode(signed)
    assert note.open_note(message, verifier).text.startswith(b"go.example/log\n1\n")
    with pytest.raises(VerificationError, match="does not verify"):
        note.open_note(message.replace(b"\n1\n", b"\n2\n"), verifier)

"""Fuzz `reprover diff` and `reprover sign-check` with mutated PE, ELF and Mach-O files.

Each input is a mutant of one fixture (tests/fixtures/ledger/*/{a,b}, the signed PEs and
Mach-O files of tests/fixtures/signature/), made by tests/fuzz_support.py: bit flips,
interesting bytes, extreme values written into header fields (e_shoff/e_shnum/e_phnum, PE
e_lfanew, NumberOfSections, SizeOfOptionalHeader, data directories incl. SECURITY, Mach-O
ncmds/sizeofcmds/cmdsize, fat nfat_arch/offset/size, code-signature blobs, DER lengths inside
the PKCS#7), truncation, extension, chunk moves and splices of two fixtures. Three commands run
on each mutant against its original: a strict `diff`, a `diff --allow <every rule> --format
json`, and `sign-check` (for signed fixtures, against the unsigned counterpart).

Invariants, per command: it ends by itself within --time-limit and under RLIMIT_AS; no signal;
no "Traceback" and no "internal error" on stderr; exit 0, 1 or 3 (never 2: every mutant is
readable); exit 0 only when the mutant's bytes equal the original's, except that an allowing
`diff` or a `sign-check` may pass a changed mutant only if every changed byte lies in a range
the independent oracle (tests/fuzz_oracle.py) says an allow rule covers. Such justified passes
are listed for review; anything else is a violation, saved with --save DIR for reproduction.
Exit 3 (inconclusive) is allowed but counted and saved.

Modes: `fork` (default) calls `reprover.cli.main` in a forked child of a long-lived worker that
keeps one LIEF fork server warm (milliseconds per command); `subprocess` runs a fresh `python`
per command, as a user would (about 0.5 s per command).

Helpers (tests/): `fuzz_support` makes the mutants, `fuzz_runner` runs one bounded command,
`fuzz_oracle` judges its outcome. Violating inputs are saved as N.bin + N.json (the commands,
outcomes and mutation steps); `--seed S --only N` re-runs one input.

Run: `.venv/bin/python scripts/fuzz.py --count 2000 --seed 1 --jobs 2 --minutes 25 --save /tmp/f`
"""

# ruff: noqa: S311 - a fuzzer wants seeded, reproducible pseudo-randomness, not secrets
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import selectors
import sys
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_oracle import judge, ledger_violations  # noqa: E402
from fuzz_runner import (  # noqa: E402
    Limits,
    Outcome,
    ParserLog,
    fresh_server,
    kill_server,
    run_forked,
    run_subprocess,
)
from fuzz_support import mutate  # noqa: E402

LEDGER = ROOT / "tests" / "fixtures" / "ledger"
SIGNATURE = ROOT / "tests" / "fixtures" / "signature"
ALLOW = ("signature", "pe.timestamp", "pe.checksum", "pe.debug.codeview", "pe.debug.repro",
         "pe.rich", "elf.build-id", "macho.uuid", "macho.oso", "debug-info")  # fmt: skip
COMMANDS = ("diff", "diff-allow", "sign-check")


@dataclass(frozen=True)
class Target:
    """A fixture to mutate and its counterpart for the signature checks."""

    name: str
    base: Path
    unsigned: Path | None = None  # base is signed; this is the file before signing
    signed: Path | None = None  # base is unsigned; this is its signed version


@dataclass
class Summary:
    """What a campaign found."""

    inputs: int = 0
    commands: int = 0
    crashes: int = 0
    violations: list[dict[str, object]] = field(default_factory=list)
    reviews: list[dict[str, object]] = field(default_factory=list)
    inconclusive: int = 0
    slow: int = 0
    exits: dict[str, Counter[int]] = field(default_factory=dict)
    mutators: Counter[str] = field(default_factory=Counter)
    max_seconds: float = 0.0
    max_input_seconds: float = 0.0
    max_rss: int = 0
    max_rss_parsers: int = 0
    wall: float = 0.0
    started: float = field(default_factory=time.monotonic)


def targets() -> list[Target]:
    """Every fixture the fuzzer mutates."""
    out = [
        Target(f"{case.name}/{side}", case / side)
        for case in sorted(LEDGER.iterdir())
        for side in ("a", "b")
        if (case / side).is_file()
    ]
    sig = SIGNATURE
    for name in ("signed", "timestamped", "dual", "noeku", "foreign"):
        out.append(Target(f"{name}.exe", sig / f"{name}.exe", unsigned=sig / "unsigned.exe"))
    out += [
        Target("other-signed.exe", sig / "other-signed.exe", unsigned=sig / "other-unsigned.exe"),
        Target("unsigned.exe", sig / "unsigned.exe", signed=sig / "signed.exe"),
        Target("macho-adhoc", sig / "macho-adhoc", unsigned=sig / "macho-unsigned"),
        Target("macho-unsigned", sig / "macho-unsigned", signed=sig / "macho-adhoc"),
    ]
    return out


def commands(t: Target, mutant: Path, rng: random.Random) -> dict[str, list[str]]:
    """The three commands for one mutant (operand order drawn from `rng`)."""
    pair = [str(mutant), str(t.base)] if rng.random() < 0.5 else [str(t.base), str(mutant)]
    allow = [arg for rule in ALLOW for arg in ("--allow", rule)]
    if t.unsigned is not None:
        released, rebuilt = str(mutant), str(t.unsigned)
    elif t.signed is not None:
        released, rebuilt = str(t.signed), str(mutant)
    else:
        released, rebuilt = pair
    return {
        "diff": ["diff", *pair],
        "diff-allow": ["diff", released, rebuilt, *allow, "--format", "json"],
        "sign-check": ["sign-check", rebuilt, released],
    }


def make_input(index: int, seed: int, all_targets: list[Target], corpus: list[bytes]
               ) -> tuple[Target, bytes, list[str], random.Random]:  # fmt: skip
    """Input `index` of campaign `seed`: always the same target, mutant and operand order."""
    rng = random.Random(f"{seed}:{index}")
    target = rng.choice(all_targets)
    mutant, steps = mutate(target.base.read_bytes(), rng, corpus)
    return target, mutant, steps, rng


# -- the campaign ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What one campaign runs."""

    count: int
    seed: int
    jobs: int = 1
    minutes: float | None = None
    mode: str = "fork"
    save: Path | None = None
    limits: Limits = field(default_factory=Limits)
    only: tuple[int, ...] = ()


class Baselines(dict[tuple[str, str], "int | None"]):
    """Exit code of each command on each unchanged fixture, run on first use."""

    def __init__(self, plan: Plan, all_targets: list[Target]) -> None:
        super().__init__()
        self.plan = plan
        self.by_name = {t.name: t for t in all_targets}

    def __missing__(self, key: tuple[str, str]) -> int | None:
        t = self.by_name[key[0]]
        for name, argv in commands(t, t.base, random.Random(0)).items():
            self[(t.name, name)] = _run(self.plan, argv).code
        return self[key]


def _rebuilt_side(name: str, argv: list[str], mutant: Path) -> bool:
    """Whether `mutant` is the rebuilt operand: diff OLD NEW, sign-check UNSIGNED SIGNED."""
    return argv[1 if name == "sign-check" else 2] == str(mutant)


def _run(plan: Plan, argv: list[str]) -> Outcome:
    if plan.mode == "subprocess":
        return run_subprocess(argv, plan.limits)
    fresh_server()
    ParserLog.new()
    outcome = run_forked(argv, plan.limits)
    parser_err = ParserLog.new()
    if parser_err:
        outcome.stderr += "\n[parser stderr]\n" + parser_err
    if outcome.signal is not None or outcome.timed_out:
        kill_server()  # the child may have died mid-request: the server's replies are stale
    return outcome


def run_input(  # noqa: PLR0917
    plan: Plan, index: int, all_targets: list[Target], corpus: list[bytes],
              base: Baselines, tmp: Path) -> dict[str, object]:  # fmt: skip
    """Make input `index`, run the three commands on it, judge, save if needed."""
    target, mutant, steps, rng = make_input(index, plan.seed, all_targets, corpus)
    original = target.base.read_bytes()
    unsigned = target.unsigned.read_bytes() if target.unsigned is not None else None
    path = tmp / target.base.name
    path.write_bytes(mutant)
    record: dict[str, object] = {"index": index, "seed": plan.seed, "target": target.name,
                                 "steps": steps, "size": len(mutant), "commands": {}}  # fmt: skip
    violations: list[str] = []
    reviews: list[str] = []
    start = time.monotonic()
    for name, argv in commands(target, path, rng).items():
        outcome = _run(plan, argv)
        bad, review = judge(
            name, outcome, mutant == original, base[(target.name, name)], original, mutant,
            rebuilt_side=_rebuilt_side(name, argv, path), unsigned=unsigned,
        )  # fmt: skip
        violations += bad
        reviews += [review] if review else []
        if name == "diff-allow" and outcome.code in (0, 1):
            sides = [Path(argv[1]).read_bytes(), Path(argv[2]).read_bytes()]
            stdout = outcome.stdout.decode("utf-8", "replace")
            violations += [f"{name}: {v}" for v in ledger_violations(*sides, stdout)]
        record["commands"][name] = {  # type: ignore[index]
            "argv": argv, "code": outcome.code, "signal": outcome.signal,
            "seconds": round(outcome.seconds, 4), "rss": outcome.rss,
            "stderr": outcome.stderr[-2000:], "timed_out": outcome.timed_out,
        }  # fmt: skip
    record["seconds"] = round(time.monotonic() - start, 4)
    record["violations"], record["reviews"] = violations, reviews
    codes = [c["code"] for c in record["commands"].values()]  # type: ignore[attr-defined]
    if plan.save is not None and (violations or reviews or 3 in codes):
        plan.save.mkdir(parents=True, exist_ok=True)
        stem = f"{plan.seed}-{index:06d}-{target.name.replace('/', '-')}"
        (plan.save / f"{stem}.bin").write_bytes(mutant)
        (plan.save / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
        record["saved"] = str(plan.save / f"{stem}.bin")
    return record


def _worker(plan: Plan, slot: int, deadline: float | None, fd: int) -> None:
    """A pool worker: its share of the inputs, one JSON line each, then its parsers' peak RSS."""
    import reprover.cli  # noqa: F401 - import once, before forking children
    from reprover.compare.isolation import worker

    worker._server = None
    all_targets = targets()
    corpus = [t.base.read_bytes() for t in all_targets]
    if plan.mode == "fork":
        ParserLog.start()
    with os.fdopen(fd, "w") as out, tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        base = Baselines(plan, all_targets)
        indices = plan.only or range(plan.count)
        for index in indices[slot :: plan.jobs]:
            if deadline is not None and time.monotonic() > deadline:
                break
            record = run_input(plan, index, all_targets, corpus, base, Path(tmp))
            out.write(json.dumps(record) + "\n")
            out.flush()
        kill_server()  # reaped here, so RUSAGE_CHILDREN covers the parser children too
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
        out.write(json.dumps({"children_rss": rss}) + "\n")


def campaign(plan: Plan, progress: bool = False) -> Summary:
    """Run `plan` on `plan.jobs` forked workers and summarize."""
    start = time.monotonic()
    deadline = start + plan.minutes * 60 if plan.minutes else None
    sel = selectors.DefaultSelector()
    pids = []
    for slot in range(plan.jobs):
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker
            os.close(read_end)
            status = 0
            try:
                _worker(plan, slot, deadline, write_end)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
                status = 70
            os._exit(status)
        os.close(write_end)
        pids.append(pid)
        sel.register(os.fdopen(read_end), selectors.EVENT_READ)
    summary = Summary(exits={name: Counter() for name in COMMANDS})
    open_streams = plan.jobs
    while open_streams:
        for key, _ in sel.select():
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if not line:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            _add(summary, json.loads(line), progress)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        if status:
            summary.violations.append({"worker": pid, "violations": [f"worker exit {status}"]})
    summary.wall = time.monotonic() - start
    return summary


def _add(summary: Summary, record: dict[str, object], progress: bool) -> None:
    if "children_rss" in record:
        summary.max_rss_parsers = max(summary.max_rss_parsers, int(record["children_rss"]))  # type: ignore[arg-type]
        return
    summary.inputs += 1
    for step in record["steps"]:  # type: ignore[attr-defined]
        summary.mutators[step.split(":")[0]] += 1
    summary.max_input_seconds = max(summary.max_input_seconds, float(record["seconds"]))  # type: ignore[arg-type]
    for name, c in record["commands"].items():  # type: ignore[attr-defined]
        summary.commands += 1
        summary.exits[name][c["code"] if c["code"] is not None else -(c["signal"] or 0)] += 1
        summary.max_seconds = max(summary.max_seconds, c["seconds"])
        summary.max_rss = max(summary.max_rss, c["rss"])
        summary.crashes += c["signal"] is not None or "Traceback" in c["stderr"]
        summary.inconclusive += c["code"] == 3
        summary.slow += c["seconds"] > 5.0
    if record["violations"]:
        summary.violations.append(record)
    if record["reviews"]:
        summary.reviews.append(record)
    if progress and (summary.inputs % 100 == 0 or record["violations"]):
        elapsed = time.monotonic() - summary.started
        print(f"  {summary.inputs} inputs, {len(summary.violations)} violations, {elapsed:.0f} s",
              file=sys.stderr, flush=True)  # fmt: skip
        for v in record["violations"]:  # type: ignore[attr-defined]
            print(f"  VIOLATION #{record['index']} {record['target']}: {v}", file=sys.stderr)


def report(summary: Summary, plan: Plan) -> str:
    """The human summary of a campaign."""
    mb = 1 << 20
    lines = [
        f"fuzz campaign: seed {plan.seed}, mode {plan.mode}, {plan.jobs} job(s), "
        f"{summary.wall:.1f} s wall",
        f"inputs: {summary.inputs}  commands: {summary.commands}  crashes: {summary.crashes}  "
        f"violations: {len(summary.violations)}  justified passes to review: "
        f"{len(summary.reviews)}  inconclusive (exit 3): {summary.inconclusive}",
        f"max time: {summary.max_seconds:.3f} s per command, {summary.max_input_seconds:.3f} s "
        f"per input; commands over {plan.limits.slow:.0f} s: {summary.slow}",
        f"max RSS: {summary.max_rss / mb:.0f} MB (reprover process), "
        f"{summary.max_rss_parsers / mb:.0f} MB (incl. LIEF parser children); "
        f"limits: {plan.limits.seconds:.0f} s, RLIMIT_AS {plan.limits.memory / mb:.0f} MB",
        "exit codes: " + "; ".join(
            f"{n}: " + ", ".join(f"{k}x{v}" for k, v in sorted(c.items()))
            for n, c in summary.exits.items()),
        "mutators: " + ", ".join(f"{k} {v}" for k, v in summary.mutators.most_common()),
    ]  # fmt: skip
    for record in summary.violations[:20]:
        lines.append(f"VIOLATION input {record.get('index')} ({record.get('target')}, "
                     f"{record.get('steps')}): {record['violations']}"
                     + (f" saved {record['saved']}" if "saved" in record else ""))  # fmt: skip
    for record in summary.reviews[:20]:
        lines.append(f"review input {record['index']} ({record['target']}, {record['steps']}): "
                     f"{record['reviews']}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: run a campaign, print the summary; exit 1 on any violation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000, help="number of inputs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="parallel workers")
    parser.add_argument("--minutes", type=float, help="stop starting new inputs after this")
    parser.add_argument("--mode", choices=("fork", "subprocess"), default="fork")
    parser.add_argument("--save", type=Path, help="folder for violating/inconclusive inputs")
    parser.add_argument("--only", type=int, action="append", default=[], help="run input N only")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds per command")
    parser.add_argument("--memory-mb", type=int, default=4096, help="RLIMIT_AS per command")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    plan = Plan(args.count, args.seed, args.jobs, args.minutes, args.mode, args.save,
                Limits(args.time_limit, args.memory_mb << 20), tuple(args.only))  # fmt: skip
    summary = campaign(plan, progress=True)
    print(report(summary, plan))
    if args.json is not None:
        data = {k: v for k, v in vars(summary).items() if k not in ("violations", "reviews")}
        data.update(violations=summary.violations, reviews=summary.reviews)
        args.json.write_text(json.dumps(data, indent=1, default=str) + "\n")
    return 1 if summary.violations else 0


if __name__ == "__main__":
    sys.exit(main())

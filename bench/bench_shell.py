"""``harness shell`` to prompt: how long a developer waits for a clean VM with the release in it.

    .venv/bin/python bench/bench_shell.py [--image linux-debian12] [--repeats 5]

Each repeat starts ``harness shell`` in a pseudo-terminal (as a person would), stops the clock at
the guest's prompt, and types ``exit``. The baseline, interleaved with it so both see the same
host load, is the bare warm VM the shell is built on: clone to SSH connected through the same
provider. The difference is what the shell adds (process start, release check on the host, the
tarball copied in and its sha256 proven, the rc file). Writes ``bench/out/bench_shell-<utc>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import pexpect

from harness.config import HostPaths
from harness.desk.session import DeskVMSpec, make_machine
from harness.vm.registry import provider_for_image

OUT_DIR = Path(__file__).parent / "out"
ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / ".venv" / "bin" / "harness"
PROMPT = r"\[harness offline\] [^\r\n]*\$ "
TIMEOUT_S = 1800


def shell_to_prompt(image: str) -> float:
    started = time.monotonic()
    child = pexpect.spawn(str(HARNESS), ["shell", "--image", image], cwd=str(ROOT), encoding="utf-8",
                          timeout=TIMEOUT_S, dimensions=(40, 120), env=dict(os.environ))
    child.expect(PROMPT)
    elapsed = time.monotonic() - started
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    if child.exitstatus != 0:
        raise SystemExit(f"harness shell exited with {child.exitstatus}")
    return elapsed


def bare_vm_to_ssh(image: str, paths: HostPaths) -> float:
    started = time.monotonic()
    machine = make_machine(DeskVMSpec(image=image, run_id="bench"), provider_for_image(image, paths), paths,
                           say=lambda line: None)
    with machine:
        machine.run("true", timeout=60)
        return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default="linux-debian12")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    paths = HostPaths.from_env()
    shell_to_prompt(args.image)  # the first warm VM of an image may build its snapshot: not counted
    shells, bares = [], []
    for _ in range(args.repeats):
        shells.append(shell_to_prompt(args.image))
        bares.append(bare_vm_to_ssh(args.image, paths))
    shell_s, bare_s = statistics.median(shells), statistics.median(bares)
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "load_average": os.getloadavg(), "image": args.image, "repeats": args.repeats,
        "shell_to_prompt_s": shells, "bare_warm_vm_to_ssh_s": bares,
        "median_shell_to_prompt_s": shell_s, "median_bare_warm_vm_s": bare_s,
        "ratio": shell_s / bare_s if bare_s else None,
    }
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"bench_shell-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'what':<40}{'median':>10}   runs")
    print(f"{'harness shell to prompt (warm)':<40}{shell_s:>9.1f}s   {', '.join(f'{s:.1f}' for s in shells)}")
    print(f"{'bare warm VM to SSH (baseline)':<40}{bare_s:>9.1f}s   {', '.join(f'{s:.1f}' for s in bares)}")
    print(f"ratio {result['ratio']:.2f}x; load average {os.getloadavg()[0]:.1f}; {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

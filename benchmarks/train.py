"""Throughput of the default training loop, and where its time goes.

Runs ``musicrl.learning.train.train`` with the default settings on the default chorale
set (built first if missing) for ``--warmup`` + ``--iterations`` adversarial
iterations, in a temporary run folder, and reports over the measured
iterations only (after the warm-up, so compilation is excluded):

* the split of each iteration's time between sampling, synth + mel, D
  scoring (rewards), D update, policy update and logging (on one device
  D's first update scores the clips as it goes: that time is the D
  update's, and the scoring phase is the rewards' arithmetic). Each phase ends
  with its results as NumPy arrays or Python floats, so its timer covers the
  finished computation, not a queued one;
* the peak resident memory of the process (``resource.getrusage``);
* ``chord-steps/s: N``, chords written, heard and learned from per
  wall-clock second (episodes times ``n_steps``): the figure to compare
  across episode lengths, since an episode of 64 steps is 4 of 16;
* last, ``episodes/s: N`` (episodes of ``n_steps`` chords per wall-clock
  second, D and policy updates included).

Usage::

    python benchmarks/train.py                     # defaults
    python benchmarks/train.py --iterations 50 --set batch_size=256
    python benchmarks/train.py --set n_steps=64    # 64-beat pieces (32 s at 120 bpm)
    python benchmarks/train.py --n-steps 16 64     # both, one after the other, and their ratio

With several ``--n-steps``, each length runs in a process of its own (so each
peak memory is its own) right after the other, and a last table gives each
length's chord-steps/s as a multiple of the first length's.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PHASES = (
    ("t_sample", "sampling (policy)"),
    ("t_mel", "synth + mel (gen and real)"),
    ("t_reward", "D scoring -> rewards"),
    ("t_d_update", "D update"),
    ("t_policy_update", "policy update"),
    ("t_log", "logging"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=30, help="measured iterations (default 30)")
    parser.add_argument("--warmup", type=int, default=10,
                        help="iterations run first and not measured (default 10)")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="pretraining steps before the loop (default: the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a setting")
    parser.add_argument("--n-steps", type=int, nargs="+", default=None, metavar="N",
                        help="episode lengths to measure one after the other, each in its own process")
    args = parser.parse_args(argv)
    if args.n_steps:
        return compare_lengths(args)

    import tensorflow as tf

    from musicrl.config import config_from_overrides
    from musicrl.store.runs import read_metrics
    from musicrl.learning.train import train

    total = args.warmup + args.iterations
    sets = [f"iterations={total}", f"checkpoint_every={total + 1}", "sample_every=0", *args.set]
    if args.pretrain_steps is not None:
        sets.append(f"pretrain_steps={args.pretrain_steps}")
    cfg = config_from_overrides(sets=sets)
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(f"devices: {devices}; CPU cores: {os.cpu_count()}; batch_size={cfg.batch_size}, "
          f"n_steps={cfg.n_steps}, d_arch={cfg.d_arch}, d_steps={cfg.d_steps}, "
          f"pretrain_steps={cfg.pretrain_steps}")

    out = tempfile.mkdtemp(prefix="musicrl-bench-")
    try:
        t0 = time.perf_counter()
        result = train(cfg, out=out, progress=False, log=lambda s: None)
        wall = time.perf_counter() - t0
        rows = read_metrics(result.run_dir)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if result.status != "finished" or len(rows) < total:
        print(f"the run did not finish: {result.message}", file=sys.stderr)
        return 1

    measured = rows[args.warmup:]
    seconds = measured[-1]["time_s"] - rows[args.warmup - 1]["time_s"] if args.warmup else measured[-1]["time_s"]
    episodes = sum(cfg.batch_size for _ in measured)
    phase_totals = {key: sum(r[key] for r in measured) for key, _ in PHASES}
    accounted = sum(phase_totals.values())
    print(f"\nwhole run (data, models, compilation, pretraining, {total} iterations): {wall:.1f} s")
    print(f"measured: {len(measured)} iterations, {episodes} episodes in {seconds:.2f} s "
          f"({1000 * seconds / len(measured):.0f} ms per iteration)\n")
    # the median shows the steady state; the mean includes the odd recompilation for a new batch shape
    print(f"{'phase':32s} {'ms/iter':>8s} {'share':>7s} {'median':>8s}")
    for key, label in PHASES:
        ms = 1000 * phase_totals[key] / len(measured)
        median = 1000 * float(np.median([r[key] for r in measured]))
        print(f"{label:32s} {ms:8.1f} {100 * phase_totals[key] / seconds:6.1f}% {median:8.1f}")
    other = seconds - accounted
    print(f"{'other (loop overhead)':32s} {1000 * other / len(measured):8.1f} {100 * other / seconds:6.1f}%")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak_mb:.0f} MB")
    print(f"chord-steps/s: {episodes * cfg.n_steps / seconds:.0f}")
    print(f"episodes/s: {episodes / seconds:.0f}")
    return 0


def compare_lengths(args: argparse.Namespace) -> int:
    """Run this benchmark once per episode length in a fresh process; print each and the ratios."""
    import re
    import subprocess

    common = ["--iterations", str(args.iterations), "--warmup", str(args.warmup)]
    if args.pretrain_steps is not None:
        common += ["--pretrain-steps", str(args.pretrain_steps)]
    for item in args.set:
        common += ["--set", item]
    figures = []
    for n_steps in args.n_steps:
        print(f"=== n_steps={n_steps} ===", flush=True)
        child = subprocess.run([sys.executable, __file__, *common, "--set", f"n_steps={n_steps}"],
                               capture_output=True, text=True)
        print(child.stdout, end="", flush=True)
        if child.returncode != 0:
            print(child.stderr, file=sys.stderr)
            return child.returncode
        found = {key: float(re.search(rf"^{key}: ([0-9.]+)", child.stdout, re.M).group(1))
                 for key in ("chord-steps/s", "episodes/s")}
        found["peak_mb"] = float(re.search(r"peak resident memory: ([0-9.]+) MB", child.stdout).group(1))
        figures.append((n_steps, found))
    first = figures[0][1]["chord-steps/s"]
    print(f"\n{'n_steps':>7s} {'episodes/s':>10s} {'chord-steps/s':>13s} {'x first':>7s} {'peak MB':>8s}")
    for n_steps, f in figures:
        print(f"{n_steps:7d} {f['episodes/s']:10.0f} {f['chord-steps/s']:13.0f} "
              f"{f['chord-steps/s'] / first:7.2f} {f['peak_mb']:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

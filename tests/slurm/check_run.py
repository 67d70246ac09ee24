#!/usr/bin/python3
"""Checks a resnet-train output directory left by a Slurm test job.

  check_run.py RUN_DIR --total-steps N [--stop-step K] [--ranks R]
               [--samples PREFIX --samples-per-epoch S --epochs E]

- checkpoint.h5 links to checkpoint-<N>.h5, which is complete (root
  attribute complete = 1) at step N and saved by R ranks; with --stop-step,
  checkpoint-<K>.h5 is complete at step K too (the stop checkpoint);
- no write left behind (.checkpoint-*.tmp);
- metrics.jsonl: train records with strictly increasing steps (no step logged
  twice, so none was redone after the requeue), the last at step N;
- with --samples: the RN_SAMPLE_LOG files PREFIX.rank<r> ("epoch index" per
  sample) of all ranks, appended by every run of the job: no sample used twice
  in an epoch, every epoch 0..E-1 uses all S samples, N x global batch in all.
Prints what it checked; exits 1 with the reasons on failure.
"""
import argparse
import collections
import glob
import json
import os
import sys

import h5py


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--total-steps", type=int, required=True)
    ap.add_argument("--stop-step", type=int)
    ap.add_argument("--ranks", type=int, default=1)
    ap.add_argument("--samples")
    ap.add_argument("--samples-per-epoch", type=int)
    ap.add_argument("--epochs", type=int)
    a = ap.parse_args()
    errors = []

    def check(ok, msg):
        if not ok:
            errors.append(msg)
        return ok

    def checkpoint(step):
        path = os.path.join(a.run_dir, "checkpoint-%08d.h5" % step)
        if not check(os.path.isfile(path), "missing %s" % path):
            return
        with h5py.File(path, "r") as f:
            at = dict(f.attrs)
        check(int(at.get("complete", 0)) == 1, "%s: not complete (complete=%s)" % (path, at.get("complete")))
        check(int(at.get("step", -1)) == step, "%s: step %s, want %d" % (path, at.get("step"), step))
        check(int(at.get("world_size", -1)) == a.ranks,
              "%s: saved by %s ranks, want %d" % (path, at.get("world_size"), a.ranks))
        print("check_run: %s complete, step %d, %d rank(s)" % (os.path.basename(path), step, a.ranks))

    N = a.total_steps
    checkpoint(N)
    link = os.path.join(a.run_dir, "checkpoint.h5")
    check(os.path.islink(link) and os.readlink(link) == "checkpoint-%08d.h5" % N,
          "checkpoint.h5 does not link to checkpoint-%08d.h5 (%s)"
          % (N, os.readlink(link) if os.path.islink(link) else "no link"))
    if a.stop_step is not None:
        checkpoint(a.stop_step)
    tmp = glob.glob(os.path.join(a.run_dir, ".checkpoint-*"))
    check(not tmp, "unfinished checkpoint writes left: %s" % tmp)

    steps = []
    with open(os.path.join(a.run_dir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("type") == "train":
                steps.append(int(rec["step"]))
    check(bool(steps), "metrics.jsonl has no train records")
    if steps:
        dup = [s for s, n in collections.Counter(steps).items() if n > 1]
        check(not dup, "metrics.jsonl logs steps more than once: %s" % dup[:10])
        check(all(x < y for x, y in zip(steps, steps[1:])), "metrics.jsonl steps are not increasing")
        check(steps[-1] == N, "metrics.jsonl ends at step %d, want %d" % (steps[-1], N))
        print("check_run: metrics.jsonl: %d train records, steps %d..%d, increasing" % (len(steps), steps[0], steps[-1]))

    if a.samples:
        files = sorted(glob.glob(a.samples + ".rank*"))
        check(len(files) == a.ranks, "sample logs %s: %d files, want %d" % (a.samples, len(files), a.ranks))
        per_epoch = collections.defaultdict(collections.Counter)
        lines = 0
        for path in files:
            with open(path) as f:
                for line in f:
                    e, i = line.split()
                    per_epoch[int(e)][int(i)] += 1
                    lines += 1
        twice = [(e, i, n) for e, c in per_epoch.items() for i, n in c.items() if n > 1]
        check(not twice, "samples trained more than once in an epoch (epoch, index, times): %s" % twice[:10])
        global_batch = lines // N if N else 0
        check(lines == N * global_batch and global_batch > 0, "%d samples for %d steps" % (lines, N))
        if a.epochs is not None and a.samples_per_epoch:
            check(sorted(per_epoch) == list(range(a.epochs)),
                  "sample log epochs %s, want 0..%d" % (sorted(per_epoch)[:5], a.epochs - 1))
            short = [e for e, c in per_epoch.items() if len(c) != a.samples_per_epoch]
            check(not short, "epochs without all %d samples: %s" % (a.samples_per_epoch, short[:10]))
            check(lines == a.epochs * a.samples_per_epoch,
                  "%d samples used, want %d epochs x %d" % (lines, a.epochs, a.samples_per_epoch))
        print("check_run: sample logs: %d samples over %d epoch(s) from %d rank(s), none twice in an epoch"
              % (lines, len(per_epoch), len(files)))

    for e in errors:
        print("check_run: FAIL: " + e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

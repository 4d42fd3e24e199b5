#!/usr/bin/python3
"""IOPS and daemon CPU per request over queue depth and queue count, ours against
qemu-storage-daemon, null and file backing: runs `blk_bench --mode=curves`, writes its CSV and
plots it into one PNG (needs Debian's python3-matplotlib, hence /usr/bin/python3; a developer step,
not CI).

  bazel build -c opt //tests/bench:blk_bench
  tests/bench/blk_curves.py --csv=tests/bench/blk_curves.csv --png=tests/bench/blk_curves.png
  tests/bench/blk_curves.py --from-csv=tests/bench/blk_curves.csv --png=...   # plot only
  tests/bench/blk_curves.py -- --daemon_cpus=0-3 --frontend_cpus=4,5,6,7 --queue_counts=1,2,4
Arguments after `--` go to blk_bench.
"""
import argparse
import csv
import io
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_bench(binary, extra):
    """blk_bench's CSV as text; its progress and errors go to our stderr."""
    cmd = [binary, "--mode=curves", "--seconds=1", "--repeat=3"] + extra
    print("running:", " ".join(cmd), file=sys.stderr)
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout


def plot(rows, png, title):
    # Imported here so that --help and the CSV step work without matplotlib.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=80)
    styles = {"ours": "-o", "qsd": "--s"}
    colors = {"null": "tab:blue", "file": "tab:orange"}
    for disk in ("null", "file"):
        for daemon in ("ours", "qsd"):
            # The depth curve: one queue only (the queue-count points are in the CSV).
            pts = sorted((int(r["depth"]), float(r["iops"]), float(r["cpu_us_per_op"]))
                         for r in rows if r["disk"] == disk and r["daemon"] == daemon
                         and r["queues"] == "1")
            if not pts:
                continue
            label = f"{daemon}, {disk}"
            depth = [p[0] for p in pts]
            axes[0].plot(depth, [p[1] / 1e3 for p in pts], styles[daemon], color=colors[disk],
                         label=label, markersize=4)
            axes[1].plot(depth, [p[2] for p in pts], styles[daemon], color=colors[disk],
                         label=label, markersize=4)
    for ax, ylabel in zip(axes, ("k IOPS", "daemon CPU µs / request")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("queue depth (1 queue)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    ticks = [0.25, 0.5, 1, 2, 4, 8]
    axes[1].set_yticks(ticks, [str(t) for t in ticks])
    axes[1].minorticks_off()
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(png)


def table(rows):
    """The points as a Markdown table: one line per (queues, depth), IOPS and CPU/op per column."""
    series = [(d, m) for d in ("null", "file") for m in ("ours", "qsd")]
    by = {(r["disk"], r["daemon"], int(r["queues"]), int(r["depth"])): r for r in rows}
    points = sorted({(k[2], k[3]) for k in by})
    head = ["queues x depth"] + [f"{d} {m} IOPS, CPU/op" for d, m in series]
    out = ["| " + " | ".join(head) + " |", "| --- |" + " ---: |" * len(series)]
    for q, depth in points:
        cells = [f"{q} x {depth}"]
        for d, m in series:
            r = by.get((d, m, q, depth))
            cells.append(f"{float(r['iops']) / 1e3:.0f} k, {float(r['cpu_us_per_op']):.2f} µs"
                         if r else "-")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1:]
        argv = argv[:argv.index("--")]
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bench", default=os.path.join(ROOT, "bazel-bin/tests/bench/blk_bench"))
    p.add_argument("--csv", default="blk_curves.csv")
    p.add_argument("--png", default="blk_curves.png")
    p.add_argument("--from-csv", help="plot this CSV instead of running the benchmark")
    p.add_argument("--table", action="store_true", help="also print a Markdown table")
    p.add_argument("--title", default="4 KiB random reads through our front end, "
                   "daemon on CPU 0 (2-vCPU shared VM)")
    args = p.parse_args(argv)
    if args.from_csv:
        with open(args.from_csv) as f:
            text = f.read()
    else:
        text = run_bench(args.bench, extra)
        with open(args.csv, "w") as f:
            f.write(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        sys.exit("blk_curves: no rows")
    plot(rows, args.png, args.title)
    if args.table:
        print(table(rows))
    print(f"blk_curves: {len(rows)} points, {args.png}", file=sys.stderr)


if __name__ == "__main__":
    main()

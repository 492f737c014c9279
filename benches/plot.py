"""Draws p50 and p99 latency against offered load from the load harness's results.

    python3 benches/plot.py target/bench-load/results.json target/bench-load/latency.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(results_path: str, out_path: str) -> None:
    with open(results_path) as f:
        rows = [r for r in json.load(f) if r["kind"] == "rate"]
    paths = sorted({r["path"] for r in rows})
    fig, ax = plt.subplots(figsize=(8, 5))
    for path in paths:
        points = sorted((r["rate"], r["p50_us"], r["p99_us"]) for r in rows if r["path"] == path)
        rates = [p[0] for p in points]
        (line,) = ax.plot(rates, [p[1] for p in points], marker="o", label=f"{path} p50")
        ax.plot(rates, [p[2] for p in points], marker="x", linestyle="--",
                color=line.get_color(), label=f"{path} p99")
    ax.set_xlabel("offered load (calls/s)")
    ax.set_ylabel("latency from intended send time (µs)")
    ax.set_yscale("log")
    ax.set_title("tools/call latency against offered load (2 cores, loopback)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_path, dpi=120)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Which fidelity change moved PEBBLE's HalfCheetah return? A one-factor ablation of ``bench_online.py``'s PEBBLE.

``scripts/bench_online.py`` measured PEBBLE on HalfCheetah at 3124 ± 260 (3 seeds, 100k steps, 500 labels)
before the fidelity fixes of the online reward model and at 2579 ± 361 after them. Two of those fixes
change what the reward model learns:

* the fit length: each feedback session now trains the ensemble up to B-Pref's ``reward_update`` = 50
  epochs (stopping at 97 % training accuracy), where it trained up to 200 before;
* the inputs: the reward model now standardises its inputs with statistics re-estimated at every refit;
  B-Pref feeds raw inputs.

(The other two, the refit step's own reward and the k-NN entropy's self-exclusion, change one stored
transition per session and one neighbour index; they are not ablated.) Each variant changes one factor
from PEBBLE's defaults and is one ``bench_online.py`` run of PEBBLE alone, at the benchmark's settings
(``BENCH_SAC_KWARGS``, the oracle teacher), in its own folder under ``--out``:

* ``defaults`` (folder ``e50``): PEBBLE's defaults;
* ``fit_epochs_200`` (folder ``e200``): ``--fit-epochs 200``, the fit length before the change;
* ``raw_inputs`` (folder ``rawin``): ``--reward-model-kwargs '{"normalize": false}'``, B-Pref's raw inputs.

Each variant runs ``scripts/bench_online.py`` as a child process (scripts never import each other) and
reads what it wrote. Running the same command again resumes the unfinished runs and skips finished ones
(``bench_online.py``'s resume). Written to ``--out``: ``ablation.json`` (per variant: the IQM final return over seeds with its
95 % stratified-bootstrap interval, mean, std, per seed, CPU seconds per run and reward-fit CPU seconds
per run, ``bench_online.py``'s row; plus the reference rows of ``docs/bench_online.json``, the old
script's SAC-true and PEBBLE at the same settings) and ``ablation.png`` (the final returns per seed with
the IQM, and the IQM return against env steps per variant, with 95 % bands, as `pbrl report` computes them), and the table is printed as Markdown.

Example::

    nohup .venv/bin/python scripts/investigations/pebble_ablation.py &        # 9 runs, about 2 CPU-hours (rerun to resume)
    .venv/bin/python scripts/investigations/pebble_ablation.py --report-only  # the table and plot of the finished runs
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pbrl.app.bench import BadInput, load_records
from pbrl.app.report import _group_curve
from pbrl.io import atomic_write
from pbrl.plots import _draw_curves

#: variant -> (folder under --out, the reward-fit epochs per session (None: PEBBLE's own), reward-model overrides)
VARIANTS: dict[str, tuple[str, int | None, dict[str, Any]]] = {
    "defaults": ("e50", None, {}),
    "fit_epochs_200": ("e200", 200, {}),
    "raw_inputs": ("rawin", None, {"normalize": False}),
}
#: the old script's measurement at the same settings (SAC-true and PEBBLE), read for reference rows
REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "bench_online.json"
#: the benchmark each variant runs
BENCH_ONLINE = Path(__file__).resolve().parents[1] / "bench_online.py"


def bench_online(argv: list[str], quiet: bool = False) -> subprocess.CompletedProcess:
    """``scripts/bench_online.py`` with ``argv``, in a child process."""
    return subprocess.run([sys.executable, str(BENCH_ONLINE), *argv], text=True,
                          capture_output=quiet, check=False)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), help=f"any of {list(VARIANTS)}")
    p.add_argument("--seeds", type=int, default=3, help="seeds per variant (0 .. seeds-1)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", default="benchmarks/pebble_ablation")
    p.add_argument("--bench-args", default="", help="more bench_online.py flags for every variant (e.g. a smoke size)")
    p.add_argument("--reference", default=str(REFERENCE), help="the old script's bench_online.json ('' for none)")
    p.add_argument("--report-only", action="store_true", help="summarise the finished runs only")
    a = p.parse_args(argv)
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variants {bad}; choose from {list(VARIANTS)}")
    if len(set(a.variants)) != len(a.variants):
        p.error("--variants names a variant twice")
    if a.seeds < 1 or a.workers < 1:
        p.error("--seeds and --workers must be >= 1")
    try:
        extra = shlex.split(a.bench_args)
    except ValueError as e:
        p.error(f"--bench-args: {e}")
    reserved = {"--agents", "--out", "--seeds", "--workers", "--fit-epochs", "--report-only"}
    if reserved & set(extra):
        p.error(f"--bench-args may not set {sorted(reserved & set(extra))}: this script sets them")
    if "--reward-model-kwargs" in extra:
        i = extra.index("--reward-model-kwargs")
        try:
            base = json.loads(extra[i + 1]) if i + 1 < len(extra) else None
        except json.JSONDecodeError as e:
            p.error(f"--bench-args: --reward-model-kwargs is not JSON: {e}")
        if not isinstance(base, dict):
            p.error("--bench-args: --reward-model-kwargs needs a JSON object")
    a.extra = extra
    # every variant's flags must parse before any run starts (bad input: one line, exit 2, nothing written):
    # bench_online.py's dry run checks them and writes nothing
    for v in a.variants:
        res = bench_online([*bench_argv(a, v), "--dry-run"], quiet=True)
        if res.returncode != 0:
            p.error(f"bench_online.py refuses variant {v}: {res.stderr.strip().splitlines()[-1] if res.stderr else ''}")
    return a


def bench_argv(a: argparse.Namespace, variant: str, report_only: bool = False) -> list[str]:
    """``bench_online.py``'s flags for one variant."""
    folder, epochs, rm_kwargs = VARIANTS[variant]
    extra = list(a.extra)
    if "--reward-model-kwargs" in extra:  # the variant's reward-model overrides go on top of the caller's
        i = extra.index("--reward-model-kwargs")
        rm_kwargs = {**json.loads(extra[i + 1]), **rm_kwargs}  # checked by parse_args
        del extra[i:i + 2]
    argv = ["--agents", "pebble", "--seeds", str(a.seeds), "--workers", str(a.workers),
            "--out", str(Path(a.out) / folder), *extra]
    if epochs is not None:
        argv += ["--fit-epochs", str(epochs)]
    if rm_kwargs:
        argv += ["--reward-model-kwargs", json.dumps(rm_kwargs)]
    return argv + (["--report-only", "--no-progress"] if report_only else [])


def reference_rows(path: str) -> dict[str, dict[str, Any]]:
    """SAC-true and PEBBLE of the old script's ``bench_online.json`` (mean, std, per seed), if it is there."""
    if not path or not Path(path).exists():
        return {}
    table = json.loads(Path(path).read_text()).get("table", {})
    rows = {}
    for name, key in (("SAC (true reward), old script", "SAC"), ("PEBBLE, old script", "PEBBLE")):
        if key in table:
            per = [float(v) for v in table[key]["final_return_per_seed"]]
            rows[name] = {"mean": float(np.mean(per)), "std": float(np.std(per)), "per_seed": per,
                          "cpu_s_per_run": float(table[key]["cpu_s_mean"])}
    return rows


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
    rows = {**result["variants"], **result["reference"]}
    for i, row in enumerate(rows.values()):
        per = row["per_seed"]
        ax1.scatter([i] * len(per), per, color=f"C{i}", alpha=0.7)
        if "iqm" in row:
            iv = row["iqm"]
            ax1.errorbar([i], [iv["value"]], yerr=[[iv["value"] - iv["low"]], [iv["high"] - iv["value"]]],
                         fmt="_", color="k", capsize=6, markersize=20)
        else:
            ax1.plot([i - 0.2, i + 0.2], [row["mean"]] * 2, color="k", lw=2)
    ax1.set_xticks(range(len(rows)), list(rows), rotation=20, ha="right", fontsize=8)
    ax1.set_ylabel("final return\n(dots: seeds; bar: IQM [95 % CI], or the mean)", fontsize=8)
    ax1.set_title("PEBBLE on " + result["task"] + ", one factor changed")
    _draw_curves(ax2, {name: (row["curve_steps"], row["curve_iqm"], row["curve_low"], row["curve_high"])
                       for name, row in result["variants"].items() if row.get("curve_steps")},
                 "env steps", "IQM evaluation return over seeds [95 % CI]", None)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> dict:
    a = parse_args(argv)
    out = Path(a.out)
    variants: dict[str, dict[str, Any]] = {}
    task = None
    for v in a.variants:
        argv_v = bench_argv(a, v, report_only=a.report_only)
        print(f"[ablation] {v}: bench_online.py {shlex.join(argv_v)}", flush=True)
        if bench_online(argv_v).returncode != 0:  # no finished run of this variant yet
            print(f"[ablation] {v}: no finished run", flush=True)
            continue
        res = json.loads((out / VARIANTS[v][0] / "bench_online.json").read_text())
        task = res["settings"]["task"]
        row = dict(res["table"]["pebble"])
        # pbrl report's IQM learning curve with its stratified-bootstrap band
        curve = _group_curve(load_records(out / VARIANTS[v][0], list(res["runs"])), [task],
                             "step", "mean_return", 500, 0.95, seed=0)
        for key, arr in zip(("curve_steps", "curve_iqm", "curve_low", "curve_high"), curve):
            row[key] = arr.tolist()
        row["flags"] = bench_argv(a, v)
        variants[v] = row
    if not variants:
        raise BadInput(f"no finished runs under {out}")
    result = {"task": task, "seeds": a.seeds, "variants": variants, "reference": reference_rows(a.reference)}
    lines = ["| variant | IQM final return [95 % CI] | mean ± std | per seed | CPU-min per run | reward-fit CPU-s per run |",
             "|---|---:|---:|---|---:|---:|"]
    for name, row in variants.items():
        i = row["iqm"]
        lines.append(f"| {name} | {i['value']:.0f} [{i['low']:.0f}, {i['high']:.0f}] | {row['mean']:.0f} ± {row['std']:.0f} | "
                     f"{', '.join(f'{x:.0f}' for x in row['per_seed'])} | {row['cpu_s_per_run'] / 60:.1f} | "
                     f"{row.get('fit_cpu_s', float('nan')):.0f} |")
    for name, row in result["reference"].items():
        lines.append(f"| {name} | | {row['mean']:.0f} ± {row['std']:.0f} | {', '.join(f'{x:.0f}' for x in row['per_seed'])} | "
                     f"{row['cpu_s_per_run'] / 60:.1f} | |")
    result["markdown"] = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "ablation.json", suffix=".json") as tmp:
        tmp.write_text(json.dumps(result, indent=1, default=float))
    plot(result, out / "ablation.png")
    print(result["markdown"])
    print(f"wrote {out / 'ablation.json'} and {out / 'ablation.png'}")
    return result


if __name__ == "__main__":
    main()

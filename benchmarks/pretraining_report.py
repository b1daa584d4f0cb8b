"""The report of benchmarks/pretraining_effect.py: markdown tables and a PNG of the fine-tuning curves.

`write_report(summary, out)` writes OUT/results.md and OUT/curves.png from the summary the benchmark
saves as OUT/results.json, and returns the markdown. Figures over several seeds are shown as mean +- std.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

COLUMNS = (("pa_mpjpe_mm", "PA-MPJPE mm", "{:.2f}"), ("pa_mpvpe_mm", "PA-MPVPE mm", "{:.2f}"),
           ("auc_3d", "3D AUC 0-50 mm", "{:.3f}"), ("px_2d", "2D px", "{:.2f}"), ("auc_2d", "2D AUC 0-30 px", "{:.3f}"))
ARMS = ("pretrained", "scratch", "matched_scratch")
LABELS = {"pretrained": "pretrained on the training images", "scratch": "random (from scratch)",
          "matched_scratch": "random, as many images as pretraining + fine-tuning"}


def _cell(values: list, fmt: str) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    if len(set(values)) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} +- {fmt.replace('+', '').format(np.std(values))}"


def groups(runs: list) -> dict:
    """(scale, encoder) -> the runs of its seeds, in the order first seen."""
    out: dict = {}
    for r in runs:
        out.setdefault((r["scale"], r["encoder"]), []).append(r)
    return out


def split_table(runs: list, split: str) -> list:
    """Markdown lines of one evaluation split: a row per scale, encoder and arm, and the difference."""
    head = ["training data", "encoder", "seeds", "encoder init"] + [c[1] for c in COLUMNS] + ["fine-tune s"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (scale, encoder), rs in groups(runs).items():
        data = f"{rs[0]['poses']} poses, {rs[0]['images']} images"
        seeds = ",".join(str(r["seed"]) for r in rs)
        for arm in [a for a in ARMS if a in rs[0]]:
            cells = [_cell([r[arm]["splits"][split].get(key) for r in rs], fmt) for key, _, fmt in COLUMNS]
            secs = _cell([r[arm]["seconds"] for r in rs], "{:.0f}")
            steps = _cell([r[arm]["steps"] for r in rs], "{:.0f}")
            lines.append(f"| {data} | {encoder} | {seeds} | {LABELS[arm]} ({steps} steps) | " + " | ".join(cells)
                         + f" | {secs} |")
        diffs = []
        for key, _, fmt in COLUMNS:
            d = [r["pretrained"]["splits"][split].get(key) - r["scratch"]["splits"][split].get(key) for r in rs
                 if r["pretrained"]["splits"][split].get(key) is not None]
            diffs.append(_cell(d, "{:+" + fmt[2:]))
        lines.append(f"| {data} | {encoder} | {seeds} | **pretrained - scratch** | " + " | ".join(diffs) + " | |")
    return lines


def _pretrain_2d(run: dict) -> str:
    """The pretrained encoder's own 2D error on its evaluation images (the shifted set), if measured."""
    figures = next(iter((run.get("pretrain_2d") or {}).values()), {})
    if "mean_px" not in figures:
        return ""
    return f" ({figures['mean_px']:.2f} px, 2D AUC {figures['auc']:.3f} on the shifted set)"


def markdown(summary: dict) -> str:
    s, plan = summary["settings"], summary["plan"]
    runs = summary["runs"]
    splits = list(runs[0]["pretrained"]["splits"]) if runs else []
    lines = ["# Does pretraining on the complement data help?", "",
             f"Fine-tuning: MobRecon, {s['finetune_steps']} steps of batch {s['batch_size']} (Adam, lr {s['lr']}, "
             f"consistency {'on' if s['consistency'] else 'off'}); pretraining: {s['pretrain_steps']} steps of batch "
             f"{s['pretrain_batch_size']} of the 2D task on the same training images; {s['resolution']} px renders, "
             f"{s['samples']} spp; "
             f"{len(plan['views'])} views per training pose; held-out poses {plan['heldout']}.",
             f"Wall time {summary['wall_seconds'] / 60:.1f} min (rendering {sum(summary['render_seconds'].values()):.0f} s"
             f", already-rendered shards not counted).", ""]
    for split in splits:
        n = runs[0]["pretrained"]["splits"][split]["samples"]
        lines += [f"## {split} ({n} samples)", ""] + split_table(runs, split) + [""]
        const = summary.get("constant", {}).get(split)
        if const:
            lines += [f"A constant prediction (this split's mean root-relative joints and mean 2D keypoints, the "
                      f"same for every image) scores {const['pa_mpjpe_mm']:.2f} mm PA-MPJPE, {const['px_2d']:.2f} px "
                      f"(2D AUC {const['auc_2d']:.3f}): an arm near it has not learned to read the image.", ""]
    lines += ["Pretraining (2D task): " + ", ".join(
        f"{r['encoder']} scale {r['scale']} seed {r['seed']}: {r['pretrain_seconds']:.0f} s" + _pretrain_2d(r)
        for r in runs), ""]
    return "\n".join(lines)


def curves_picture(summary: dict, path: Path) -> Path:
    """One panel per (scale, encoder, split): evaluation PA-MPJPE against fine-tuning step, both arms."""
    from pretrain.curves import line_chart
    from synth.pictures import grid

    panels = []
    runs = summary["runs"]
    splits = list(runs[0]["pretrained"]["history"]) if runs else []
    for (scale, encoder), rs in groups(runs).items():
        for split in splits:
            series = {}
            for arm in [a for a in ARMS if a in rs[0]]:
                for r in rs:
                    steps, values = r[arm]["history"][split]
                    series[f"{arm} seed {r['seed']}"] = (steps, values)
            const = summary.get("constant", {}).get(split)
            xs = [x for steps, _ in series.values() for x in steps]
            if const and xs:                # the level below which a model has learned to read the image
                series["constant prediction"] = ([min(xs), max(xs)], [const["pa_mpjpe_mm"]] * 2)
            panels.append(line_chart(series, title=f"{encoder}, {rs[0]['poses']} poses: {split}",
                                     xlabel="fine-tuning step", ylabel="PA-MPJPE mm", size=(420, 280)))
    if panels:
        grid(panels, columns=max(1, len(splits))).save(path)
    return path


def write_report(summary: dict, out: Path) -> str:
    text = markdown(summary)
    (Path(out) / "results.md").write_text(text + "\n")
    curves_picture(summary, Path(out) / "curves.png")
    return text

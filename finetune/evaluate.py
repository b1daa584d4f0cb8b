"""`hands evaluate`: score a predictions file against ground truth with a benchmark's official metrics.

Files it reads (predictions and ground truth alike):

- `.npz`: `xyz` (N,21,3); optional `verts` (N,V,3), `uv` (N,21,2) px, `vis`
  (N,21), `K` (N,3,3), `ids` (N,), `sequence` (N,); in the project's
  conventions (metres, OpenCV camera, FreiHAND order);
- `.json` pair `[xyz_list, verts_list]` (a pred.json), or a plain list of 21x3
  keypoint sets such as FreiHAND's / HO3D's `evaluation_xyz.json` (a sibling
  `*_verts.json` is read with it); in the benchmark's submission convention:
  HO3D order and OpenGL for `ho3d`, the project's otherwise;
- `.txt`: Dex-YCB result lines (index + 63 values in mm, FreiHAND order).

Samples are matched by `ids` when either file has them (Dex-YCB result files
always do; a ground-truth index missing from the predictions is an error, as
in hpe_eval.py), else by position. Without `uv`, 2D keypoints are projected
from `xyz` with `K` when both files have it. With `sequence` ids in either
file (frames in temporal order), MobRecon's Acc of the predictions is added for
any benchmark.

Writes `metrics_<benchmark>.json` (every figure, its unit, the curves, per-
keypoint errors, notes) and `pck_<benchmark>.png`, and returns the table it prints.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BENCHMARKS = ("freihand", "ho3d", "dexycb", "rhd", "stb")
TITLES = {"freihand": "FreiHAND", "ho3d": "HO3D", "dexycb": "Dex-YCB", "rhd": "RHD", "stb": "STB"}


def _json_keypoint_file(path: Path, benchmark: str) -> dict:
    from finetune.export import SubmissionFormatError, read_json_pair
    from finetune.metrics.conventions import ho3d_to_freihand, opengl_to_opencv

    data = json.loads(path.read_text())
    try:
        first_ndim = np.asarray(data[0], dtype=np.float64).ndim if isinstance(data, list) and data else None
    except (ValueError, TypeError):  # ragged: let the pair reader say what is wrong
        first_ndim = None
    if first_ndim == 2:  # a plain list of 21x3 keypoint sets (evaluation_xyz.json)
        xyz = np.asarray(data, dtype=np.float64)
        if xyz.ndim != 3 or xyz.shape[1:] != (21, 3):
            raise SubmissionFormatError(f"{path}: expected a list of 21x3 keypoint sets, got shape {xyz.shape}")
        verts = None
        sibling = path.with_name(path.name.replace("_xyz", "_verts"))
        if "_xyz" in path.name and sibling.exists():
            verts = [np.asarray(v, dtype=np.float64) for v in json.loads(sibling.read_text())]
            if len(verts) != len(xyz):
                raise SubmissionFormatError(
                    f"{sibling}: {len(verts)} meshes for the {len(xyz)} keypoint sets of {path}")
    else:
        xyz, verts = read_json_pair(path)
    if benchmark == "ho3d":  # HO3D's files are in its joint order and the OpenGL frame
        xyz = ho3d_to_freihand(opengl_to_opencv(xyz))
        verts = None if verts is None else [opengl_to_opencv(v) for v in verts]
    return {"xyz": xyz, "verts": verts}


def _npz_file(path: Path) -> dict:
    import zipfile

    from finetune.export import SubmissionFormatError

    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":  # every zip archive (so every .npz) starts with these two bytes
        what = "an empty file" if not head else f"it starts with {head!r}"
        raise SubmissionFormatError(f"{path}: not an .npz archive ({what}); write one with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as z:
            if "xyz" not in z.files:
                raise SubmissionFormatError(f"{path}: no 'xyz' array (N, 21, 3); it has {sorted(z.files)}")
            out = {"xyz": np.asarray(z["xyz"], dtype=np.float64)}
            for key, name in (("verts", "verts"), ("uv", "uv"), ("vis", "visible"), ("visible", "visible"),
                              ("K", "K"), ("ids", "ids"), ("sequence", "sequence")):
                if key in z.files:
                    out[name] = z[key]
    except SubmissionFormatError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, TypeError, AttributeError) as err:
        text = " ".join(str(err).split())[:200]
        raise SubmissionFormatError(f"{path}: not a readable .npz archive ({type(err).__name__}: {text})") from None
    n = len(out["xyz"])
    if out["xyz"].ndim != 3 or out["xyz"].shape[1:] != (21, 3):
        raise SubmissionFormatError(f"{path}: 'xyz' has shape {out['xyz'].shape}, expected (N, 21, 3)")
    for key, arr in out.items():
        if len(arr) != n:
            raise SubmissionFormatError(f"{path}: '{key}' has {len(arr)} entries for {n} samples")
    return out


def load_keypoint_file(path, benchmark: str) -> dict:
    """Read predictions or ground truth into project-convention arrays (see the module docstring)."""
    from finetune.export import SubmissionFormatError, read_dexycb_results

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = _npz_file(path)
    elif suffix == ".json":
        try:
            data = _json_keypoint_file(path, benchmark)
        except json.JSONDecodeError as err:
            raise SubmissionFormatError(f"{path}: not a JSON file ({err})") from err
    elif suffix == ".txt":
        ids, xyz = read_dexycb_results(path)
        data = {"xyz": xyz, "ids": ids}
    else:
        raise SubmissionFormatError(f"{path}: unknown file type '{suffix}'; expected .npz, .json or .txt")
    data.setdefault("verts", None)
    _check_finite(path, data)
    return data


def _check_finite(path, data: dict) -> None:
    """NaN or inf in the keypoints or meshes: an error naming the file, the key and how many values."""
    from finetune.export import SubmissionFormatError

    for key in ("xyz", "verts"):
        val = data.get(key)
        if val is None:
            continue
        arrays = val if isinstance(val, list) else list(np.asarray(val, dtype=np.float64))
        bad = [int(np.size(a) - np.isfinite(np.asarray(a, dtype=np.float64)).sum()) for a in arrays]
        total = sum(bad)
        if total:
            nan = sum(int(np.isnan(np.asarray(a, dtype=np.float64)).sum()) for a in arrays)
            first = next(i for i, b in enumerate(bad) if b)
            raise SubmissionFormatError(
                f"{path}: '{key}' holds {total} non-finite value{'s' * (total != 1)} ({nan} NaN, {total - nan} inf; "
                f"in {sum(b > 0 for b in bad)} of {len(arrays)} samples, the first sample {first})")


def _match(pred: dict, gt: dict, pred_path, gt_path) -> dict:
    """Predictions reordered to the ground truth's samples (by ids when either file has them)."""
    n_gt, n_pred = len(gt["xyz"]), len(pred["xyz"])
    if "ids" not in pred and "ids" not in gt:
        if n_pred != n_gt:
            raise ValueError(f"{pred_path} has {n_pred} samples, {gt_path} has {n_gt}; "
                             "give both files 'ids' to evaluate a subset")
        return pred
    gt_ids = np.asarray(gt.get("ids", np.arange(n_gt)))
    pred_ids = np.asarray(pred.get("ids", np.arange(n_pred)))
    where = {int(i): k for k, i in enumerate(pred_ids)}
    missing = [int(i) for i in gt_ids if int(i) not in where]
    if missing:
        raise ValueError(f"{pred_path}: no prediction for sample index {missing[0]} of {gt_path} "
                         f"({len(missing)} missing)")
    rows = np.array([where[int(i)] for i in gt_ids])
    out = {}
    for key, val in pred.items():
        if val is None:
            out[key] = None
        elif isinstance(val, list):
            out[key] = [val[r] for r in rows]
        else:
            out[key] = np.asarray(val)[rows]
    return out


def _uv(data: dict):
    if "uv" in data:
        return np.asarray(data["uv"], dtype=np.float64)
    if "K" in data:
        from finetune.datasets.base import project

        return np.stack([project(x, K) for x, K in zip(data["xyz"], np.asarray(data["K"], dtype=np.float64))])
    return None


def evaluate_files(pred_path, gt_path, benchmark: str, mesh_topology: str = "auto", steps: int | None = None,
                   fps: float | None = None):
    """Score pred_path against gt_path; returns a finetune.metrics.BenchmarkResult."""
    from finetune import metrics

    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if mesh_topology not in ("auto", "mano", "other"):
        raise ValueError(f"mesh topology must be auto, mano or other, got {mesh_topology!r}")
    gt = load_keypoint_file(gt_path, benchmark)
    pred = _match(load_keypoint_file(pred_path, benchmark), gt, pred_path, gt_path)
    mano = {"auto": None, "mano": True, "other": False}[mesh_topology]
    if benchmark == "freihand":
        res = metrics.evaluate_freihand(gt["xyz"], gt["verts"], pred["xyz"], pred["verts"], mano)
    elif benchmark == "ho3d":
        res = metrics.evaluate_ho3d(gt["xyz"], gt["verts"], pred["xyz"], pred["verts"], mano)
    elif benchmark == "dexycb":
        res = metrics.evaluate_dexycb(gt["xyz"], pred["xyz"])
    else:
        res = metrics.evaluate_rhd_stb(gt["xyz"], pred["xyz"], _uv(gt), _uv(pred), gt.get("visible"),
                                       benchmark=benchmark, steps=steps or metrics.rhd_stb.STEPS)
    sequence = pred.get("sequence", gt.get("sequence"))
    if sequence is not None:
        for name, (value, unit) in metrics.acceleration_figures(pred["xyz"], sequence, _uv(pred), fps).items():
            res.add(name, value, unit)
        res.notes.append("Acc: MobRecon's acceleration of the predicted joints, mean over frames and joints "
                         "(3D of wrist-relative joints)")
    return res


def format_table(res) -> str:
    """The figures as an aligned text table (cm figures also in mm, the unit papers quote)."""
    rows = [("figure", "value", "unit")]
    for name, value in res.figures.items():
        unit = res.units.get(name, "")
        if value is None:
            rows.append((name, "-", unit))
            continue
        text = f"{value:.4f}"
        if unit == "cm":
            text += f" ({value * 10:.2f} mm)"
        rows.append((name, text, unit))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{TITLES.get(res.benchmark, res.benchmark)}: {res.num_samples} samples"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines += [f"note: {n}" for n in res.notes]
    return "\n".join(lines)


def write_report(res, out_dir) -> tuple[Path, Path]:
    """metrics_<benchmark>.json and pck_<benchmark>.png in out_dir."""
    from finetune.metrics.plot import plot_pck
    from pretrain.checkpoint import atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js = out / f"metrics_{res.benchmark}.json"
    atomic_write_text(js, json.dumps(res.to_json(), indent=1))
    png = out / f"pck_{res.benchmark}.png"
    plot_pck(res.curves, png, title=f"{TITLES.get(res.benchmark, res.benchmark)} PCK ({res.num_samples} samples)")
    return js, png


def run_evaluate(pred_path, gt_path, benchmark: str, out_dir, mesh_topology: str = "auto",
                 steps: int | None = None, fps: float | None = None, echo=print):
    """Evaluate, print the table, write the JSON and the PNG; returns (result, json path, png path)."""
    res = evaluate_files(pred_path, gt_path, benchmark, mesh_topology, steps, fps)
    js, png = write_report(res, out_dir)
    echo(format_table(res))
    echo(f"wrote {js} and {png}")
    return res, js, png

"""`hands predict` (a model file on images -> OBJ + picture) and `hands export-onnx`."""
from __future__ import annotations

from pathlib import Path


def _box(text):
    if text is None:
        return None
    try:
        box = [float(v) for v in text.split(",")]
    except ValueError:
        box = []
    if len(box) != 4:
        raise ValueError(f"--box {text!r}: expected x0,y0,x1,y1 in pixels")
    return box


def _cmd_predict(args) -> None:
    from finetune.predict import predict_files

    missing = [p for p in args.images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"image(s) not found: {', '.join(missing)}")
    predict_files(args.model, args.images, args.out, focal=args.focal, box=_box(args.box))


def _cmd_export(args) -> None:
    from finetune.models import load_model
    from finetune.onnx_export import compare, export_onnx

    model = load_model(args.model)
    path = export_onnx(model, args.out, opset=args.opset)
    diffs = compare(model, path)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, opset {args.opset}); max |onnxruntime - torch|: "
          + ", ".join(f"{k} {v:.2e}" for k, v in diffs.items()))
    worst = max(diffs.values())
    if worst > args.tolerance:
        raise RuntimeError(f"onnxruntime's output differs from PyTorch's by {worst:.2e} (> {args.tolerance})")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="run a trained model on images: OBJ meshes and pictures",
                              description="Writes OUT/NAME.obj (camera-space mesh, metres) and OUT/NAME.png "
                                          "(the mesh and 2D keypoints drawn on the image) per image.")
    p.add_argument("--model", required=True, help="OUT/model.pt of hands finetune")
    p.add_argument("images", nargs="+", help="image files (a crop around one right hand, or give --box)")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument("--focal", type=float, help="focal length in image pixels, > 0 (default: the longer image side)")
    p.add_argument("--box", help="hand box x0,y0,x1,y1 in pixels, x1 > x0 and y1 > y0, overlapping the image "
                                  "(default: the whole image; write --box=-5,... when x0 is negative)")
    p.set_defaults(fn=_cmd_predict)

    e = subparsers.add_parser("export-onnx", help="export a trained model to ONNX and check it with onnxruntime")
    e.add_argument("--model", required=True, help="OUT/model.pt of hands finetune")
    e.add_argument("--out", required=True, help="the .onnx file to write")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--tolerance", type=float, default=1e-4, help="largest accepted difference to PyTorch")
    e.set_defaults(fn=_cmd_export)

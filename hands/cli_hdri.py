"""`hands hdri list|sheet`: the environments the renderer will use. bpy and numpy are
imported only when a command runs."""
from __future__ import annotations

import sys
from pathlib import Path


def _catalog(args):
    from hdri.catalog import build_catalog

    # skipped files go to stderr, so stdout stays the table
    return build_catalog(folders=args.folder, skies=args.skies, bundled=not args.no_bundled, strict=args.strict,
                         heldout=args.heldout, heldout_fraction=args.heldout_fraction,
                         report=lambda line: print(line, file=sys.stderr))


def _summary(entries) -> str:
    from collections import Counter

    sources = Counter(e.source for e in entries)
    held = sum(e.split == "heldout" for e in entries)
    return (f"{len(entries)} environments: {len(entries) - held} train, {held} held out "
            f"({', '.join(f'{n} {s}' for s, n in sources.items())})")


def _cmd_list(args) -> None:
    from hdri.catalog import resolve_path
    from hdri.validate import inspect_file

    entries = _catalog(args)
    rows = [("id", "source", "split", "resolution", "file")]
    for e in entries:
        if e.source == "sky":
            res, file = f"sky elev {e.sky[0]:g} deg, turbidity {e.sky[1]:g}", "-"
        else:
            file = resolve_path(e)
            h, w = inspect_file(file)[1]
            res = f"{w}x{h}"
        rows.append((e.id, e.source, e.split, res, file))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    print(_summary(entries))


def _cmd_sheet(args) -> None:
    from hdri.sheet import THUMB, contact_sheet

    entries = _catalog(args)
    sheet = contact_sheet(entries, columns=args.columns, exposure=args.exposure, samples=args.samples,
                          size=(args.width, args.width // 2) if args.width else THUMB)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    print(f"wrote {out} ({len(entries)} thumbnails; {_summary(entries)})")


def _catalog_options(p) -> None:
    p.add_argument("--folder", action="append", default=[], metavar="DIR",
                   help="a folder of .hdr/.exr maps (searched recursively), repeatable")
    p.add_argument("--skies", type=int, default=6, help="procedural skies from the sun elevation x turbidity "
                   "grid (default 6, at most 24; 0 for none)")
    p.add_argument("--no-bundled", action="store_true", help="leave out the 8 world HDRIs that ship with bpy")
    p.add_argument("--strict", action="store_true",
                   help="stop at the first unusable file (default: report it and skip it)")
    p.add_argument("--heldout", action="append", default=None, metavar="ID",
                   help="hold this environment out of training, repeatable (default: a hash-chosen share)")
    p.add_argument("--heldout-fraction", type=float, default=0.25,
                   help="share held out when no --heldout is given (default 0.25)")


def add_parser(subparsers) -> None:
    """Add `hdri list` and `hdri sheet` to the `hands` subcommands."""
    hdri = subparsers.add_parser("hdri", help="HDR environments: list them, look at them")
    sub = hdri.add_subparsers(dest="what", required=True)

    ls = sub.add_parser("list", help="the catalog: id, source, split, resolution, file")
    _catalog_options(ls)
    ls.set_defaults(fn=_cmd_list)

    sh = sub.add_parser("sheet", help="a PNG contact sheet of tone-mapped thumbnails, labelled with id and split")
    _catalog_options(sh)
    sh.add_argument("--out", default="hdri_sheet.png")
    sh.add_argument("--columns", type=int, default=4)
    sh.add_argument("--exposure", type=float, default=0.0, help="stops before tone mapping (default 0)")
    sh.add_argument("--samples", type=int, default=4, help="Cycles samples per pixel of sky thumbnails")
    sh.add_argument("--width", type=int, default=0, help="thumbnail width in pixels (default 256)")
    sh.set_defaults(fn=_cmd_sheet)

"""`hands model-stats`: parameters and Mult-Adds of every registered encoder and model.

Counted by `pretrain.complexity` (forward hooks; conv and linear multiply-accumulates per
image only, as MobRecon's Table 1). For the stacked encoders a second pair of columns gives
Table 1's scope (the network without the second stack's map decoder) next to the paper's
figures. Full reconstruction models come from `finetune.models.MODELS`. torch is imported
only when the command runs, so `hands --help` stays light.
"""
from __future__ import annotations


def _params(n) -> str:
    return f"{n / 1e6:.2f}M"


def _macs(n) -> str:
    return f"{n / 1e6:.1f}M"


def _encoder_rows(names, size):
    from pretrain.complexity import count_complexity
    from pretrain.encoders import PAPER_TABLE1, build_encoder, table1_scope

    for name in names:
        enc = build_encoder(name, input_size=size)
        c = count_complexity(enc, size)
        scope = table1_scope(enc)
        t1 = c.without(scope) if scope else None
        paper = PAPER_TABLE1.get(name) if size == 128 else None
        yield ("encoder", name, str(size), _params(c.params), _macs(c.macs),
               _params(t1.params) if t1 else "-", _macs(t1.macs) if t1 else "-",
               f"{paper[0] / 1e6:.1f}M / {_macs(paper[1])}" if paper else "-")


def _model_rows(names, size):
    import torch

    from finetune.models import build_model
    from pretrain.complexity import count_complexity

    for name in names:
        try:
            model = build_model(name)
            s = int(getattr(model, "input_size", size) or size)
            c = count_complexity(model, inputs=torch.rand(1, 3, s, s))
            yield ("model", name, str(s), _params(c.params), _macs(c.macs), "-", "-", "-")
        except Exception as err:  # a model that cannot be built or run here still gets its row
            yield ("model", name, "-", "n/a", "n/a", "-", "-", f"({type(err).__name__}: {err})"[:80])


def run(args) -> None:
    from finetune.models import model_names as registered_models
    from pretrain.encoders import REGISTRY

    if args.input_size <= 0 or args.input_size % 32:
        raise ValueError(f"--input-size must be a positive multiple of 32, got {args.input_size}")
    enc_names = list(REGISTRY)
    model_names = registered_models()
    if args.only:
        key = args.only.strip().lower().replace("-", "_")
        if key not in enc_names and key not in model_names:
            raise ValueError(f"--only {args.only!r}: not a registered encoder ({', '.join(enc_names)}) "
                             f"or model ({', '.join(model_names)})")
        enc_names = [key] if key in enc_names else []
        model_names = [key] if key in model_names else []

    header = ("kind", "name", "input", "params", "Mult-Adds", "T1 params", "T1 Mult-Adds", "paper Table 1 (128)")
    rows = [header]
    rows.extend(_encoder_rows(enc_names, args.input_size))
    rows.extend(_model_rows(model_names, args.input_size))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    print("Mult-Adds: conv + linear multiply-accumulates per image (BN, activations, additions, pooling, "
          "interpolation not counted). T1: Table 1's scope of MobRecon (without the second stack's map decoder).")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("model-stats", help="parameters and Mult-Adds of every encoder and model")
    p.add_argument("--input-size", type=int, default=128, help="input size for the encoders (default 128)")
    p.add_argument("--only", metavar="NAME", help="one encoder or model")
    p.set_defaults(fn=run)

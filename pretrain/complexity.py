"""Parameters and Mult-Adds of a model, counted with forward hooks (no counting library).

What is counted (per sample: the model runs once on a batch of one, in eval mode,
without gradients):

- Parameters: every element of every `nn.Parameter` of the model (shared ones once),
  trainable or not, BatchNorm's weight and bias included; buffers (BatchNorm's
  running statistics) are not parameters.
- Mult-Adds (multiply-accumulate operations, as in Table 1 of MobRecon and the
  usual "MAdds"/"MACs" of MobileNet and GhostNet):
  * `nn.Conv1d/2d/3d`: out_elements * (in_channels / groups) * prod(kernel)
    (out_elements = C_out * H_out * W_out; a depth-wise 3x3 is therefore
    9 * C * H_out * W_out);
  * `nn.ConvTranspose*`: in_elements * (out_channels / groups) * prod(kernel);
  * `nn.Linear`: in_features * out_features per output row (in * out for a vector);
  * the same formulas for `F.conv*d` / `F.linear` called outside those modules,
    and matrix products called anywhere (`torch.matmul` / `@`, `mm`, `bmm`,
    `addmm`, `baddbmm`): out_elements * the contracted length.
  Biases, BatchNorm (it folds into the preceding convolution at inference),
  activations, the SE gate's sigmoid and scaling, element-wise additions and
  concatenations, pooling, interpolation, `grid_sample` and `einsum` are NOT
  counted. This is the convention of Table 1 (convolution and fully-connected
  multiply-adds only), stated so the figures can be compared.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONVT = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


@dataclass
class Complexity:
    params: int
    macs: int
    # top-level child name -> (parameters, Mult-Adds); "" collects what the root module does itself
    by_module: dict = field(default_factory=dict)

    def row(self) -> str:
        return f"{human(self.params)} params, {human(self.macs)} Mult-Adds"

    def without(self, names) -> "Complexity":
        """The counts without the named top-level modules (e.g. Table 1's scope of a stacked
        encoder: `c.without(encoder.table1_exclude)`)."""
        names = tuple(names)
        missing = [n for n in names if n not in self.by_module]
        if missing:
            raise KeyError(f"no top-level module {missing} among {sorted(self.by_module)}")
        params = self.params - sum(self.by_module[n][0] for n in names)
        macs = self.macs - sum(self.by_module[n][1] for n in names)
        return Complexity(params, macs, {k: v for k, v in self.by_module.items() if k not in names})


def human(n: float) -> str:
    """6_612_345 -> '6.61M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(int(n))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _conv_macs(module: nn.Module, out: torch.Tensor, batch: int) -> int:
    per_out = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    return out.numel() // batch * per_out


def _convt_macs(module: nn.Module, inp: torch.Tensor, batch: int) -> int:
    per_in = (module.out_channels // module.groups) * math.prod(module.kernel_size)
    return inp.numel() // batch * per_in


def _matmul_macs(a: torch.Tensor, out: torch.Tensor) -> int:
    return out.numel() * a.shape[-1]


class _FunctionalCounter(TorchFunctionMode):
    """Counts matrix products everywhere, and F.conv*/F.linear when no counted module is running."""

    def __init__(self, state):
        super().__init__()
        self.state = state

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        st = self.state
        if not isinstance(out, torch.Tensor):
            return out
        macs = 0
        if func in (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.mm, torch.Tensor.mm,
                    torch.bmm, torch.Tensor.bmm):
            macs = _matmul_macs(args[0], out)
        elif func in (torch.addmm, torch.baddbmm, torch.Tensor.addmm, torch.Tensor.baddbmm):
            macs = _matmul_macs(args[1] if len(args) > 1 else kwargs["mat1" if "mat1" in kwargs else "batch1"], out)
        elif st["inside"] == 0 and func is F.linear:
            macs = out.numel() * args[0].shape[-1]
        elif st["inside"] == 0 and func in (F.conv1d, F.conv2d, F.conv3d):
            weight = args[1] if len(args) > 1 else kwargs["weight"]
            macs = out.numel() * math.prod(weight.shape[1:])
        if macs:
            st["add"](macs // st["batch"])
        return out


def count_complexity(model: nn.Module, input_size: int = 128, inputs=None) -> Complexity:
    """Parameters and per-sample Mult-Adds of `model` on one (1, 3, S, S) image (or on `inputs`,
    a tensor or a tuple of arguments whose first dimension is the batch)."""
    if inputs is None:
        inputs = (torch.zeros(1, 3, input_size, input_size),)
    elif isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    batch = inputs[0].shape[0]

    by_module: dict[str, list[int]] = {"": [0, 0]}
    for name, child in model.named_children():
        by_module[name] = [count_params(child), 0]
    by_module[""][0] = count_params(model) - sum(v[0] for v in by_module.values())
    total = [0]
    stack: list[str] = []
    state = {"inside": 0, "batch": batch}

    def add(macs: int) -> None:
        total[0] += macs
        by_module[stack[0] if stack else ""][1] += macs

    state["add"] = add

    handles = []

    def pre(name):
        def hook(module, args):
            stack.append(name)
            if isinstance(module, _CONV + _CONVT + (nn.Linear,)):
                state["inside"] += 1
        return hook

    def post(module, args, out):
        if isinstance(module, _CONV):
            add(_conv_macs(module, out, batch))
        elif isinstance(module, _CONVT):
            add(_convt_macs(module, args[0], batch))
        elif isinstance(module, nn.Linear):
            add(out.numel() // batch * module.in_features)
        if isinstance(module, _CONV + _CONVT + (nn.Linear,)):
            state["inside"] -= 1
        stack.pop()

    for name, module in model.named_modules():
        if module is model:
            continue
        top = name.split(".")[0]
        handles.append(module.register_forward_pre_hook(pre(top)))
        handles.append(module.register_forward_hook(post))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), _FunctionalCounter(state):
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return Complexity(params=count_params(model), macs=total[0],
                      by_module={k: tuple(v) for k, v in by_module.items() if v != [0, 0]})

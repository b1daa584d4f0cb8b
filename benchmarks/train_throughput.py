"""Training throughput: images per second of every encoder, and of the pretraining data loader.

    .venv/bin/python benchmarks/train_throughput.py [--encoders densestack,ghoststack] [--iters 5]
                                                   [--data SHARDS] [--loader-workers N]

1. For every registered encoder: one training step of the 2D-pose pretraining
   model (encoder + heatmap head + MapReg head, the task loss, backward, Adam
   step) on a batch of 32 random 128x128 images; images per second after
   `--warmup` steps, in this process with torch's default thread count.
2. The data loader of `hands pretrain` (shard reads, PNG decoding, crop +
   augmentation warp, colour jitter, collation) with the trainer's default
   worker count, images per second over `--loader-epochs` epochs of batches
   of 32, on `--data` or, by default, on a Blender-free stand-in written to a
   temporary folder at 256 px (the renderer's default resolution) with noisy
   backgrounds (PNG payloads as large as rendered ones).
Prints figures, including the loader's rate over DenseStack's training rate
(the loader should be at least 2x faster); asserts nothing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))   # sketch_data, the stand-in dataset writer

import torch  # noqa: E402

from pretrain.encoders import build_named_encoder, encoder_names  # noqa: E402
from pretrain.task2d import Pose2DNet, gaussian_heatmaps, px_to_norm  # noqa: E402


def train_rate(name: str, batch: int, size: int, iters: int, warmup: int) -> tuple:
    torch.manual_seed(0)
    net = Pose2DNet(build_named_encoder(name, size))
    params = sum(p.numel() for p in net.encoder.parameters())
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, size, size)
    uv = torch.rand(batch, 21, 2) * (size - 1)
    target = gaussian_heatmaps(uv, size, size // 4, 1.0)

    def step():
        out = net(x)
        loss = 100 * torch.nn.functional.mse_loss(out["heatmaps"], target) + \
            torch.nn.functional.l1_loss(out["positions"], px_to_norm(uv, size))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    t = time.perf_counter()
    for _ in range(iters):
        step()
    return batch * iters / (time.perf_counter() - t), params


def loader_rate(data: Path, batch: int, size: int, workers: int, epochs: int) -> tuple:
    from torch.utils.data import DataLoader

    from pretrain.data2d import Augment2D, Pose2DSamples
    from pretrain.trainer import EpochBatchSampler
    from synth.reader import ComplementDataset

    ds = Pose2DSamples(ComplementDataset(data), input_size=size, augment=Augment2D(), seed=0)
    sampler = EpochBatchSampler(len(ds), batch, seed=0)
    images, t = 0, None
    for epoch in range(epochs + 1):
        sampler.set_epoch(epoch)
        ds.set_epoch(epoch)
        loader = DataLoader(ds, batch_sampler=sampler, num_workers=workers,
                            generator=torch.Generator().manual_seed(epoch))
        for i, b in enumerate(loader):
            if epoch == 0:
                if i == 0:
                    first = time.perf_counter()
                continue                     # epoch 0 warms up (worker start, page cache)
            if t is None:
                t = time.perf_counter()
            images += len(b["image"])
    elapsed = time.perf_counter() - t if t else float("nan")
    return images / elapsed, len(ds), first


def main(argv=None) -> None:
    from pretrain.trainer import default_num_workers

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--encoders", help="comma list (default: every registered encoder)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--data", help="rendered shards for the loader (default: a stand-in written to a temp folder)")
    p.add_argument("--render-size", type=int, default=256, help="image size of the stand-in (default 256)")
    p.add_argument("--loader-workers", type=int, help="DataLoader workers (default: the trainer's default)")
    p.add_argument("--loader-epochs", type=int, default=3)
    p.add_argument("--skip-encoders", action="store_true")
    args = p.parse_args(argv)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {cpus} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    rates = {}
    if not args.skip_encoders:
        names = args.encoders.split(",") if args.encoders else encoder_names()
        print(f"\ntraining step of the pretraining model (encoder + heads, loss, backward, Adam), "
              f"batch {args.batch}, {args.size}x{args.size}, float32 CPU, {args.iters} timed steps:")
        for name in names:
            rate, params = train_rate(name, args.batch, args.size, args.iters, args.warmup)
            rates[name] = rate
            print(f"  {name:16s} {rate:8.1f} images/s   ({params / 1e6:.1f}M encoder parameters)", flush=True)

    tmp = None
    data = Path(args.data) if args.data else None
    if data is None:
        from sketch_data import write_sketch_dataset

        tmp = Path(tempfile.mkdtemp(prefix="hands-loader-"))
        t = time.perf_counter()
        data = write_sketch_dataset(tmp / "data", poses=range(4), views=range(64), size=args.render_size)
        print(f"\nstand-in dataset: 4 poses x 64 views at {args.render_size} px written in "
              f"{time.perf_counter() - t:.1f} s ({sum(f.stat().st_size for f in (data / 'shards').glob('*.tar')) / 2**20:.1f} MiB)")
    workers = default_num_workers() if args.loader_workers is None else args.loader_workers
    try:
        rate, n, _ = loader_rate(data, args.batch, args.size, workers, args.loader_epochs)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"\ndata loader ({data if args.data else 'stand-in'}, {n} samples, {workers} worker(s), batch {args.batch}, "
          f"crop {args.size} px with augmentation): {rate:.1f} images/s")
    if "densestack" in rates:
        ratio = rate / rates["densestack"]
        print(f"loader / DenseStack training rate: {ratio:.1f}x ({'ok' if ratio >= 2 else 'below'} the 2x target)")


if __name__ == "__main__":
    main()

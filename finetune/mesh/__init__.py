"""Mesh toolkit for the graph decoders (MobRecon, CMR, Chebyshev models), in plain numpy/scipy/torch.

The field's usual helpers (psbody-mesh, openmesh, torch-scatter, pytorch3d) are
the installs that fail most, so the few things the decoders need are here:

- `hierarchy`: the 778 -> 389 -> 195 -> 98 -> 49 levels with their down/up
  sampling matrices, cached on disk, by `synth.simplify` (quadric-error edge
  collapse that keeps a subset of the vertices; OpenHand 2's build uses it too);
- `spiral`: spiral neighbourhoods (SpiralNet++ order) of any level;
- `ops`: torch modules (Resample, SpiralConv, DSConv, ChebConv) built from
  gather / index_add so they export to ONNX and count like the papers;
- `losses`: vertex L1, normal and edge-length losses on any topology.

Nothing heavy is imported here: import the submodule you need.
"""

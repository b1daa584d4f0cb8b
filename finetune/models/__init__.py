"""Reconstruction models by name, and the model files fine-tuning writes.

    MODELS                      name -> factory (a pretrain.registry.Registry of "module:attr", imported on first use)
    model_names()               the registered names, in the order above
    build_model(name, **kw)     a model; keywords go to the factory (encoder, input_size, hand_model, ...)
    save_model(path, model)     the weights with what rebuilds them (name, keywords, hand model, topology)
    load_model(path)            the model of such a file, in eval mode

Every model takes (B, 3, S, S) RGB crops in [0, 1] and returns a dict with at least

| key | shape | meaning |
| --- | --- | --- |
| vertices | (B, 778, 3) | root-relative mesh (minus the wrist keypoint), metres, camera orientation |
| keypoints_3d | (B, 21, 3) | root-relative keypoints (joint_regressor @ vertices, minus its wrist) |
| keypoints_2d | (B, 21, 2) | crop pixels (pixel centres, top-left pixel at (0, 0)) |

and offers `loss_terms(pred, batch) -> {name: tensor}` (the unweighted terms of its paper's loss),
`input_size`, `topology` (the hand model's: 'mano' or its template hash), `faces` and
`joint_regressor`. Camera-space output (the root) comes from `finetune.models.root.recover_root`.
"""
from __future__ import annotations

from pathlib import Path

from pretrain.registry import Registry

MODELS = Registry("model", {
    "mobrecon_densestack": "finetune.models.mobrecon:mobrecon_densestack",
    "mobrecon_ghoststack": "finetune.models.mobrecon:mobrecon_ghoststack",
    "mobrecon_resnet18": "finetune.models.mobrecon:mobrecon_resnet18",
    "mobrecon_resnet50": "finetune.models.mobrecon:mobrecon_resnet50",
    "mobrecon_mobilenet": "finetune.models.mobrecon:mobrecon_mobilenet",
    "cmr_baseline": "finetune.models.cmr:cmr_baseline",
    "sar_resnet18": "finetune.models.sar:sar_resnet18",
    "sar_resnet34": "finetune.models.sar:sar_resnet34",
    "sar_resnet50": "finetune.models.sar:sar_resnet50",
    "smr_resnet18": "finetune.models.smr:smr_resnet18",
    "smr_resnet34": "finetune.models.smr:smr_resnet34",
    "smr_resnet50": "finetune.models.smr:smr_resnet50",
    "csr_resnet18": "finetune.models.csr:csr_resnet18",
    "csr_resnet50": "finetune.models.csr:csr_resnet50",
    "sima_mvr": "finetune.models.sima:sima_mvr",
    "sima_svr": "finetune.models.sima:sima_svr",
})

MODEL_FORMAT = "hands-model/1"


def model_names() -> list:
    return list(MODELS)


def build_model(name: str, **kw):
    """Build a registered model: `build_model("mobrecon_densestack", input_size=128)`."""
    factory = MODELS.get(name)
    try:
        model = factory(**kw)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        bad = str(err).split("unexpected keyword argument")[-1].strip()
        raise ValueError(f"model {name!r} has no option {bad} (options are its factory's keywords: "
                         f"{factory.__module__}.{factory.__name__})") from None
    model.registry_name = MODELS.normalise(name)
    model.build_kwargs = dict(kw)
    return model


def save_model(path, model, **extra) -> Path:
    """Weights plus what rebuilds the model (`load_model` reads it back)."""
    from pretrain.checkpoint import atomic_save

    name = getattr(model, "registry_name", None)
    if name is None:
        raise ValueError("save_model: the model was not built by finetune.models.build_model (no registry name)")
    kwargs = {k: v for k, v in getattr(model, "build_kwargs", {}).items() if k != "pretrained_encoder"}
    return atomic_save({"format": MODEL_FORMAT, "model": name, "kwargs": kwargs, "topology": model.topology,
                        "input_size": int(model.input_size),
                        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                        **extra}, path)


def load_model(path, map_location="cpu"):
    """The model saved by `save_model` (e.g. OUT/model.pt of `hands finetune`), in eval mode."""
    from pretrain.checkpoint import safe_load

    data = safe_load(path, "model file", map_location=map_location)
    if data.get("format") != MODEL_FORMAT or not {"model", "kwargs", "state_dict"} <= set(data):
        raise ValueError(f"{path}: not a model file of `hands finetune` (needs format {MODEL_FORMAT!r}; "
                         f"has keys {sorted(data)})")
    model = build_model(data["model"], **data["kwargs"])
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit model {data['model']!r}: {str(err)[:300]}") from None
    return model.to(map_location).eval()

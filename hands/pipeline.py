"""Pipelines: named lists of stages with settings, read from pipelines.yaml.

A pipeline file looks like

    pipelines:
      demo:
        description: ...
        stages:
          - hand_model: {model: openhand}
          - pose_space: {check: base}

Stages run in order in one output folder; each stage reads what earlier stages
produced (`ctx.need(...)`) and adds its own outputs; the stages are the entries of
`hands.stages.STAGES` (a `pretrain.registry.Registry`, passed below as `registry`). The runner writes
`summary.json` and `report.html` (figures and pictures of every stage) at the end.
"""
from __future__ import annotations

import html
import inspect
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = REPO_ROOT / "pipelines.yaml"


class PipelineError(ValueError):
    pass


@dataclass
class StageRecord:
    name: str
    settings: dict
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)
    pictures: list = field(default_factory=list)


@dataclass
class Context:
    out: Path
    outputs: dict = field(default_factory=dict)
    records: list = field(default_factory=list)
    producers: dict = field(default_factory=dict)
    overwrite: bool = False     # the training stages may replace a run a former run of the pipeline left

    def need(self, key: str, stage_hint: str):
        if key not in self.outputs:
            raise PipelineError(f"stage '{self.records[-1].name}' needs '{key}', which stage "
                                f"'{stage_hint}' produces; add it earlier in the pipeline")
        return self.outputs[key]

    def give(self, **values) -> None:
        for k, v in values.items():
            self.outputs[k] = v
            self.producers[k] = self.records[-1].name

    def figure(self, name: str, value) -> None:
        """A number or short text for the report and summary.json; printed now."""
        self.records[-1].figures[name] = value
        print(f"  {name}: {value}")

    def picture(self, path: Path, caption: str) -> None:
        self.records[-1].pictures.append((Path(path).name, caption))
        print(f"  picture: {path}")


def load_pipelines(path: Path | str | None = None) -> dict:
    path = Path(path) if path else DEFAULT_FILE
    if not path.is_file():
        raise PipelineError(f"pipeline file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise PipelineError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or not isinstance(data.get("pipelines"), dict):
        raise PipelineError(f"{path}: expected a top-level 'pipelines:' mapping")
    return data["pipelines"]


def parse_stages(name: str, spec: dict, registry) -> list:
    """[(stage name, settings)] of a pipeline, every stage and setting checked."""
    stages = spec.get("stages") if isinstance(spec, dict) else None
    if not isinstance(stages, list) or not stages:
        raise PipelineError(f"pipeline '{name}' has no 'stages:' list")
    out = []
    for i, entry in enumerate(stages):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise PipelineError(f"pipeline '{name}', stage {i + 1}: write each stage as '- name: {{settings}}'")
        (stage, settings), = entry.items()
        settings = settings or {}
        check_settings(stage, settings, registry)
        out.append((stage, dict(settings)))
    return out


def stage_settings(fn) -> dict:
    """A stage's settings and their defaults (its keyword-only parameters)."""
    return {p.name: p.default for p in inspect.signature(fn).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_settings(stage: str, settings: dict, registry) -> None:
    """PipelineError for a stage `registry` lacks ("unknown stage ..."), a setting the stage lacks, or a value
    of the wrong type (synth.settings: the stage's annotations), so a bad value stops the pipeline before its
    first stage runs."""
    from synth.settings import check_types, signature_types

    fn = registry.get(stage)
    known = stage_settings(fn)
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise PipelineError(f"stage '{stage}' has no setting {', '.join(map(repr, unknown))}; "
                            f"settings: {', '.join(f'{k} (default {v!r})' for k, v in known.items()) or 'none'}")
    try:
        check_types(settings, signature_types(fn), f"setting of stage '{stage}'")
    except ValueError as err:
        raise PipelineError(str(err)) from None


def apply_overrides(stages: list, overrides: list, registry) -> list:
    """--set stage.key=value (value parsed as YAML) on every occurrence of the stage."""
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise PipelineError(f"--set expects stage.setting=value, got '{item}'")
        key, value = item.split("=", 1)
        stage, setting = key.split(".", 1)
        names = [s for s, _ in stages]
        if stage not in names:
            raise PipelineError(f"--set {item}: stage '{stage}' is not in this pipeline ({', '.join(names)})")
        check_settings(stage, {setting: yaml.safe_load(value)}, registry)
        for s, settings in stages:
            if s == stage:
                settings[setting] = yaml.safe_load(value)
    return stages


def run_pipeline(name: str, out: Path, file: Path | None = None, overrides: list = (),
                 overwrite: bool = False) -> Context:
    """Run pipeline `name` into `out`; `overwrite`: its training stages may replace the runs a former run of
    it left there (else they refuse, pretrain.trainer.claim_run_folder)."""
    from .stages import STAGES

    pipelines = load_pipelines(file)
    if name not in pipelines:
        raise PipelineError(f"unknown pipeline '{name}'; pipelines: {', '.join(sorted(pipelines))}")
    stages = apply_overrides(parse_stages(name, pipelines[name], STAGES), list(overrides), STAGES)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, overwrite=bool(overwrite))
    t_all = time.time()
    for i, (stage, settings) in enumerate(stages):
        print(f"[{i + 1}/{len(stages)}] {stage} {settings if settings else ''}".rstrip(), flush=True)
        ctx.records.append(StageRecord(stage, settings))
        t0 = time.time()
        STAGES[stage](ctx, **settings)
        ctx.records[-1].seconds = round(time.time() - t0, 2)
        print(f"  done in {ctx.records[-1].seconds:.1f} s", flush=True)
    write_report(ctx, name, pipelines[name].get("description", ""), time.time() - t_all)
    return ctx


def write_report(ctx: Context, name: str, description: str, seconds: float) -> None:
    summary = {"pipeline": name, "seconds": round(seconds, 2),
               "stages": [{"stage": r.name, "settings": r.settings, "seconds": r.seconds,
                           "figures": r.figures, "pictures": [p for p, _ in r.pictures]} for r in ctx.records]}
    from pretrain.checkpoint import atomic_write_text

    atomic_write_text(ctx.out / "summary.json", json.dumps(summary, indent=2, default=str))
    parts = [f"<h1>Pipeline {html.escape(name)}</h1><p>{html.escape(description)}</p>",
             f"<p>{len(ctx.records)} stages in {seconds:.1f} s</p>"]
    for r in ctx.records:
        parts.append(f"<h2>{html.escape(r.name)} <small>({r.seconds:.1f} s)</small></h2>")
        if r.settings:
            parts.append(f"<p><code>{html.escape(json.dumps(r.settings, default=str))}</code></p>")
        if r.figures:
            rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                           for k, v in r.figures.items())
            parts.append(f"<table>{rows}</table>")
        for pic, caption in r.pictures:
            parts.append(f"<figure><img src='{html.escape(pic)}' style='max-width:100%'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td{padding:2px 12px}</style>"
    atomic_write_text(ctx.out / "report.html", f"<!doctype html><meta charset='utf-8'>{style}" + "".join(parts))
    print(f"report: {ctx.out / 'report.html'}")

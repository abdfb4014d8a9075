"""The stage runner of the paper experiments (experiments.biomedlm, meditron, medalpaca, quickstart), and
their command line; the stages themselves are built in biomed_jax/papers/builders.py.

Each stage calls one existing entry point (data preparation, (continued) pretraining, fine-tuning or
evaluation) with one section of the experiment's config, in its own folder under WORKDIR. A finished stage
leaves STAGE_FILE there (its settings and a summary of its results): rerun with the same settings it is
skipped; with other settings (more steps, say) it is called again and the entry point resumes from its own
checkpoints. Before anything runs, every path a stage reads must exist or be written by an earlier stage,
and every mesh must fit the host's devices, so a missing file fails in seconds, not hours in.

`--plan` prints each stage's resolved settings and the single command that runs that stage alone, and
checks each section against the target's device count, without allocating anything: a pod-scale config
is checked on a laptop before the pod is booked.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
from typing import Any, Callable

import ml_collections
from absl import flags

from biomed_jax import cli
from biomed_jax.logs import quiet_library_logs
from biomed_jax.run_dir import read_json, write_json

STAGE_FILE = "stage.json"


@dataclasses.dataclass
class Input:
    """A path a stage reads, the config field it comes from, and what it should hold."""

    field: str
    path: str
    what: str


@dataclasses.dataclass
class Stage:
    group: str                     # what --stages selects: data, base, pretrain, finetune, sft, eval
    name: str                      # unique; also the stage's folder under WORKDIR
    title: str
    section: ml_collections.ConfigDict   # the config the entry point runs with, every path resolved
    call: Callable[[ml_collections.ConfigDict, str], dict]   # (section, folder) -> summary
    command: str                   # the same stage as one command line
    settings: list[tuple[str, str]]
    inputs: list[Input]
    check: Callable[[int], Any] | None = None   # raises ValueError if the section cannot run on n devices
    extra: dict = dataclasses.field(default_factory=dict)   # settings outside the section (a checkpoint)
    notes: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # more plan lines

    def folder(self, workdir: str) -> str:
        return os.path.join(workdir, self.name)

    def key(self) -> dict:
        """What the stage file records: a rerun with the same key is skipped."""
        return {"config": json.loads(self.section.to_json(sort_keys=True)), **self.extra}


# --- the command line --------------------------------------------------------------------------------


def define_flags(experiment: str, config: str = "") -> dict:
    """--config (default configs/EXPERIMENT.py:smoke), --workdir, --stages and --plan."""
    return dict(
        config=cli.define_config_file(
            "config", config or f"configs/{experiment}.py:smoke",
            f"The experiment's config ({config or f'configs/{experiment}.py:paper or :smoke'}).", lock_config=False),
        workdir=flags.DEFINE_string("workdir", f"runs/{experiment}", "Every stage writes a folder here."),
        stages=flags.DEFINE_list("stages", [], "Stage groups or names to run, e.g. pretrain,finetune "
                                 "(default: all, in order)."),
        plan=flags.DEFINE_bool("plan", False, "Print each stage's settings and command; run nothing."),
    )


def main(flag_holders: dict, build: Callable, report: Callable) -> None:
    """The body of every paper experiment: build its stages, then plan, or run and report."""
    quiet_library_logs()
    cfg = flag_holders["config"].value
    workdir = os.path.normpath(flag_holders["workdir"].value)
    stages = build(cfg, workdir)
    selected = select(stages, flag_holders["stages"].value)
    if flag_holders["plan"].value:
        plan = make_plan(cfg, stages, selected, workdir)
        print_plan(plan)
        raise SystemExit(0 if plan.ok else 1)
    summaries = run(cfg, stages, selected, workdir)   # a StageInputError is one line (biomed_jax/cli.py)
    report(cfg, workdir, summaries)


def select(stages: list[Stage], names: list[str]) -> list[Stage]:
    if not names:
        return stages
    known = {s.group for s in stages} | {s.name for s in stages}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"--stages: unknown stage(s) {unknown}; this config has {sorted(known)}")
    return [s for s in stages if s.group in names or s.name in names]


# --- running -----------------------------------------------------------------------------------------


class StageInputError(ValueError):
    pass


def load_summary(stage: Stage, workdir: str) -> dict | None:
    """The stage's summary if it finished with these settings, else None.

    Not run_dir.ensure_same_settings: a stage folder with other settings is not refused but run again
    (the entry point resumes from its own checkpoints, and refuses for itself what it cannot resume)."""
    path = os.path.join(stage.folder(workdir), STAGE_FILE)
    if not os.path.exists(path):
        return None
    saved = read_json(path, "stage record")
    return saved["summary"] if saved["key"] == stage.key() else None


def run(cfg: ml_collections.ConfigDict, stages: list[Stage], selected: list[Stage], workdir: str) -> dict:
    """Runs the selected stages not yet done; returns {stage name: summary} of every finished stage."""
    done = {s.name: load_summary(s, workdir) for s in stages}
    todo = [s for s in selected if done[s.name] is None]
    check_inputs(todo, stages, done, workdir)
    check_devices(cfg, todo)
    for i, stage in enumerate(selected, 1):
        folder = stage.folder(workdir)
        if done[stage.name] is not None:
            print(f"\n== [{i}/{len(selected)}] {stage.name}: done, skipped ({folder}/{STAGE_FILE})", flush=True)
            continue
        print(f"\n== [{i}/{len(selected)}] {stage.name}: {stage.title}", flush=True)
        t0 = time.time()
        summary = stage.call(copy.deepcopy(stage.section), folder)
        summary["seconds"] = round(time.time() - t0, 1)
        write_json(os.path.join(folder, STAGE_FILE), {"key": stage.key(), "summary": summary}, sort_keys=True)
        done[stage.name] = summary
        print(f"-- {stage.name} finished in {summary['seconds']:.0f} s", flush=True)
    return {name: summary for name, summary in done.items() if summary is not None}


def check_inputs(todo: list[Stage], stages: list[Stage], done: dict, workdir: str) -> None:
    """Every path a stage to run reads exists, or an earlier stage writes it; else one error naming them all."""
    will_run = {s.name for s in todo}
    problems = []
    for stage in todo:
        for inp in stage.inputs:
            producer = next((s for s in stages if _inside(inp.path, s.folder(workdir))), None)
            if producer is not None and producer is not stage:
                if producer.name in will_run or done[producer.name] is not None or os.path.exists(inp.path):
                    continue
                problems.append(f"{stage.name} reads {inp.path} ({inp.field}), which stage {producer.name} "
                                f"writes: run it first (--stages={producer.group})")
            elif not inp.path:
                problems.append(f"{inp.field} is not set: stage {stage.name} needs {inp.what} "
                                f"(--config.{inp.field}=PATH)")
            elif not os.path.exists(inp.path):
                problems.append(f"{inp.field}: {inp.path} does not exist; stage {stage.name} needs {inp.what}")
    if problems:
        raise StageInputError("missing inputs:\n  " + "\n  ".join(problems))


def check_devices(cfg: ml_collections.ConfigDict, todo: list[Stage]) -> None:
    """Each stage's mesh fits this host's devices (a paper mesh fails here, not after data preparation)."""
    import jax

    from biomed_jax import sharding as shd

    n = jax.device_count()
    for stage in todo:
        if "mesh" not in stage.section:
            continue
        try:
            shd.resolve_mesh_shape(stage.section.mesh, n)
        except ValueError as e:
            raise StageInputError(
                f"stage {stage.name}: {e}. hardware.target={cfg.hardware.target} has {cfg.hardware.devices} "
                f"devices; run it there, or set the stage's mesh (e.g. mesh.fsdp=-1) for this host") from None


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.normpath(path) if path else "", os.path.normpath(folder)
    return path == folder or path.startswith(folder + os.sep)


# --- --plan --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class PlannedStage:
    """One stage as --plan states it: where it writes, its settings, whether its section fits the target."""

    stage: Stage
    folder: str
    check: str | None   # "ok for N device(s)", "ERROR: why", or None where there is nothing to check

    @property
    def ok(self) -> bool:
        return self.check is None or not self.check.startswith("ERROR")

    def fields(self) -> dict[str, str]:
        """The stage's plan lines by key, in order: folder, its settings, check, command, notes."""
        fields = {"folder": self.folder, **dict(self.stage.settings)}
        if self.check is not None:
            fields["check"] = self.check
        return {**fields, "command": self.stage.command, **dict(self.stage.notes)}


@dataclasses.dataclass
class Plan:
    """What --plan prints, as data: the target hardware, each selected stage, the inputs no stage writes."""

    experiment: str
    preset: str
    workdir: str
    hardware: dict
    stages: list[PlannedStage]
    external_inputs: list[str]   # "field = path" (or "(not set)") that must exist before the run

    @property
    def ok(self) -> bool:
        return all(planned.ok for planned in self.stages)

    def stage(self, name: str) -> PlannedStage:
        return next(planned for planned in self.stages if planned.stage.name == name)


def make_plan(cfg, stages: list[Stage], selected: list[Stage], workdir: str) -> Plan:
    """Every selected stage's settings and command, each section checked against the target's device count
    without allocating anything."""
    devices = cfg.hardware.devices
    planned = []
    for stage in selected:
        check = None
        if stage.check is not None:
            try:
                stage.check(devices)
                check = f"ok for {devices} device(s)"
            except ValueError as e:
                check = f"ERROR: {e}"
        planned.append(PlannedStage(stage, stage.folder(workdir), check))
    external = [f"{inp.field} = {inp.path or '(not set)'}" for s in selected for inp in s.inputs
                if not any(_inside(inp.path, other.folder(workdir)) for other in stages)]
    return Plan(cfg.experiment, cfg.preset, workdir, cfg.hardware.to_dict(), planned, list(dict.fromkeys(external)))


def print_plan(plan: Plan) -> None:
    hw = plan.hardware
    print(f"{plan.experiment} ({plan.preset}) -> {plan.workdir}")
    target = f"target {hw['target']}: {hw['devices']} device(s) on {hw['hosts']} host(s)"
    if hw.get("paper"):
        print(f"hardware: paper {hw['paper']}")
        print(f"          {target}")
    else:
        print(f"hardware: {target}")
    for i, planned in enumerate(plan.stages, 1):
        print(f"\n[{i}/{len(plan.stages)}] {planned.stage.name}: {planned.stage.title}")
        for key, value in planned.fields().items():
            print(f"  {key:<12} {value}")
    if plan.external_inputs:
        print("\ninputs that must exist before the run:\n  " + "\n  ".join(plan.external_inputs))


# --- results --------------------------------------------------------------------------------------------


def write_results(workdir: str, markdown: str, data: dict) -> None:
    """WORKDIR/results.md and results.json; the table is printed too."""
    with open(os.path.join(workdir, "results.md"), "w") as f:
        f.write(markdown)
    write_json(os.path.join(workdir, "results.json"), data, sort_keys=True)
    print("\n" + markdown)
    print(f"wrote {workdir}/results.md and results.json")


def percent(x: float | None) -> str:
    """An accuracy in [0, 1] as a percentage cell."""
    return "—" if x is None else f"{100 * x:.1f}"


def pretrain_line(name: str, section, summary: dict) -> str:
    """One line on a finished pretraining stage for a results.md."""
    val = summary["val_loss"]
    return (f"{name}: {section.preset}, {summary['step']:,} steps of {section.train.batch_size} x "
            f"{section.train.seq_len} tokens, validation loss {'—' if val is None else f'{val:.3f}'}")

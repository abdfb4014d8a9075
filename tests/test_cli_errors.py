"""Every entry point answers a user's mistake with one line, `error: ...`, naming the field or file and what
to do, and exit status 2 (biomed_jax/cli.py); the traceback is there when asked for."""

from __future__ import annotations

import glob
import os

import pytest

from helpers import REPO_ROOT, run_cli

# module -> (arguments with one mistake, words the error line must hold). {tmp} is a folder holding
# `corrupt/` (config.json and a damaged model.safetensors), `pickles/` (only pytorch_model.bin), `empty/`.
CASES = {
    "experiments.pretrain": (["--config=configs/pretrain.py:nope", "--workdir={tmp}/w"], ["--config", "unknown preset 'nope'"]),
    "experiments.finetune_mcq": (["--config=configs/finetune_mcq.py", "--config.trian.epochs=1", "--workdir={tmp}/w"],
                     ["--config.trian.epochs", "no field 'trian'", 'did you mean "train"']),
    "experiments.finetune_sft": (["--config=configs/finetune_sft.py", "--config.init_checkpoint={tmp}/none", "--workdir={tmp}/w"],
                     ["{tmp}/none", "is not a run directory"]),
    "experiments.finetune_seqcls": (["--workdir={tmp}/w"], ["--config", "must have a value"]),
    "experiments.evaluate": (["--config=configs/evaluation.py:quick", "--checkpoint=/nonexistent", "--workdir={tmp}/w"],
                 ["--checkpoint='/nonexistent' is not a run directory"]),
    "experiments.generate": (["--checkpoint={tmp}/empty", "--prompt=hi"], ["{tmp}/empty", "no checkpoints/ folder"]),
    "experiments.serve": (["--checkpoint={tmp}/none"], ["{tmp}/none", "is not a run directory"]),
    "experiments.convert": (["--direction=hf_to_jax", "--src={tmp}/corrupt", "--workdir={tmp}/w"],
                ["{tmp}/corrupt/model.safetensors is not a readable safetensors file", "header"]),
    "experiments.merge_adapter": (["--adapter={tmp}/none", "--workdir={tmp}/w"], ["{tmp}/none"]),
    "experiments.model_info": (["--config=configs/pretrain.py:tiny", "--config.model.n_layer=3"],
                   ["--config.model.n_layer", 'did you mean "n_layers"']),
    "experiments.prepare_data": (["--config=configs/data.py:pubmed", "--config.manual_dir={tmp}/empty", "--data_dir={tmp}/d"],
                     ["sources.abstracts.paths", "matched no files under '{tmp}/empty'"]),
    "experiments.train_tokenizer": (["--config=configs/data.py:nope", "--workdir={tmp}/w"], ["unknown preset 'nope'"]),
    "experiments.inspect_data": (["--kind=pubmed_xml", "{tmp}/missing.xml"], ["file not found: {tmp}/missing.xml"]),
    "experiments.lm_eval": (["--checkpoint={tmp}/none"], ["--checkpoint={tmp}/none is not a directory"]),
    "experiments.aot_check": (["--config=configs/pretrain.py:tiny", "--config.train.batch_size=x"],
                  ["--config.train.batch_size", "invalid literal"]),
    "experiments.adapt_memory": (["--presets=nope"], ["unknown model preset 'nope'"]),
    "experiments.biomedlm": (["--workdir={tmp}/w", "--stages=nope"], ["--stages", "unknown stage(s) ['nope']"]),
    "experiments.meditron": (["--workdir={tmp}/w", "--config.sft.trian=1"], ["--config.sft.trian", "no field 'trian'"]),
    "experiments.medalpaca": (["--workdir={tmp}/w", "--config=configs/medalpaca.py:nope"], ["unknown preset 'nope'"]),
    "experiments.quickstart": (["--workdir={tmp}/w", "--config.pretrain.train.stepz=1"], ['did you mean "steps"']),
    "experiments.launch_local": (["--processes=0", "--", "experiments.pretrain"], ["--processes must be >= 1"]),
    "benchmarks.bench_train": (["--config=configs/pretrain.py:tiny", "--config.model.dtyp=float32"], ["no field 'dtyp'"]),
    "benchmarks.bench_data": (["--workdir={tmp}/w", "--config=configs/data.py:nope"], ["unknown preset 'nope'"]),
    "benchmarks.bench_eval": (["--preset=nope"], ["unknown model preset 'nope'"]),
    "benchmarks.bench_generate": (["--preset=nope"], ["unknown model preset 'nope'"]),
    "benchmarks.bench_convert": (["--modes=nope"], ["--modes=nope", "read and/or convert"]),
    "benchmarks.bench_serve": (["--model=nope"], ["unknown model preset 'nope'"]),
    "benchmarks.sweep_train": (["--preset=nope", "--out={tmp}/sweep"], ["unknown preset 'nope'"]),
}


# One entry point per kind of mistake runs in `make test` (each start imports jax: about 3 s); the rest are
# marked slow.
FAST = {"experiments." + name for name in ("pretrain", "finetune_mcq", "evaluate", "convert", "prepare_data",
                                           "biomedlm", "launch_local")}
FAST.add("benchmarks.bench_convert")


def entry_points() -> set[str]:
    """The experiments/ and benchmarks/ modules that run as commands."""
    names = set()
    for folder in ("experiments", "benchmarks"):
        for path in glob.glob(os.path.join(REPO_ROOT, folder, "*.py")):
            with open(path, encoding="utf-8") as f:
                if 'if __name__ == "__main__":' in f.read():
                    names.add(f"{folder}.{os.path.basename(path)[:-3]}")
    return names


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    for name in ("corrupt", "pickles", "empty"):
        (tmp / name).mkdir()
    (tmp / "corrupt" / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp / "corrupt" / "model.safetensors").write_bytes(b"\xff" * 64)
    (tmp / "pickles" / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp / "pickles" / "pytorch_model.bin").write_bytes(b"\x80\x04")
    return str(tmp)


def test_every_entry_point_has_a_case():
    assert entry_points() == set(CASES)


def _one_line_error(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], proc.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("module", [m if m in FAST else pytest.param(m, marks=pytest.mark.slow) for m in sorted(CASES)])
def test_a_mistake_is_one_line_and_status_2(module, bad_inputs):
    args, words = CASES[module]
    proc = run_cli(module, *(a.format(tmp=bad_inputs) for a in args), check=False, timeout=120)
    line = _one_line_error(proc)
    for word in words:
        assert word.format(tmp=bad_inputs) in line


def test_pickle_only_weights_are_refused_naming_the_file(bad_inputs):
    proc = run_cli("experiments.convert", "--direction=hf_to_jax", f"--src={bad_inputs}/pickles",
                   f"--workdir={bad_inputs}/w2", check=False)
    line = _one_line_error(proc)
    assert "only pickle weights (pytorch_model.bin)" in line and "safe_serialization=True" in line


@pytest.mark.parametrize("switch, env", [(["--verbosity=1"], {}),
                                         pytest.param([], {"BIOMED_TRACEBACK": "1"}, marks=pytest.mark.slow)])
def test_the_traceback_is_shown_when_asked_for(bad_inputs, switch, env):
    proc = run_cli("experiments.evaluate", "--config=configs/evaluation.py:quick", "--checkpoint=/nonexistent",
                   f"--workdir={bad_inputs}/w", *switch, env_extra=env, check=False)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "is not a run directory" in proc.stderr


def test_tests_run_entry_points_as_commands_and_never_import_them():
    """experiments/ and benchmarks/ only wire library calls: what a test checks lives in biomed_jax/."""
    for path in glob.glob(os.path.join(REPO_ROOT, "tests", "*.py")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                words = line.split()
                assert not (words[:1] in (["from"], ["import"]) and len(words) > 1
                            and words[1].split(".")[0] in ("experiments", "benchmarks")), f"{path}: {line.strip()}"

"""Checkpoint folders: save -> load round trip, atomic replacement, and clear errors."""

import json

import pytest
import torch

from glyphfuse.core.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    load_checkpoint,
    load_checkpoint_config,
    load_safetensors,
    read_checkpoint_info,
    read_model_card,
    save_checkpoint,
    save_safetensors_atomic,
)
from glyphfuse.core.files import write_json_atomic
from glyphfuse.core.errors import GlyphfuseError
from glyphfuse.core.tokenizer import tokenize
from helpers import micro_config, random_model


def _outputs(model, config):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, config.channels, config.image_size, config.image_size, generator=g)
    text = tokenize(["hi", "a\nb"], config.text.max_length)
    with torch.no_grad():
        return model(x, torch.tensor([10.0, 700.0]), text)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    config = micro_config()
    model = random_model(config)
    path = tmp_path_factory.mktemp("ckpt") / "run"
    save_checkpoint(path, model, config, metadata={"step": 12, "note": "test"})
    return path, model, config


def test_save_load_round_trip_gives_identical_outputs(saved):
    path, model, config = saved
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    loaded, loaded_config = load_checkpoint(path)
    assert loaded_config == config
    assert not loaded.training
    out = _outputs(loaded, config)
    assert out.abs().max() > 0  # not the trivial all-zero output
    assert torch.equal(out, _outputs(model, config))


def test_config_json_layout(saved):
    path, _, config = saved
    header = json.loads((path / CONFIG_NAME).read_text())
    assert header["model"] == json.loads(config.to_json())
    info = read_checkpoint_info(path)
    assert info["metadata"] == {"step": 12, "note": "test"}
    assert info["weights_dtype"] == "float32" and info["version"] and info["created"]
    assert load_checkpoint_config(path) == config


@pytest.mark.parametrize("dtype,tol", [("float16", 1e-3), ("bfloat16", 1e-2)])
def test_half_precision_storage_loads_back_as_fp32(tmp_path, dtype, tol):
    config = micro_config()
    model = random_model(config)
    save_checkpoint(tmp_path / "half", model, config, dtype=dtype)
    full = sum(t.numel() * 4 for t in model.state_dict().values())
    assert (tmp_path / "half" / WEIGHTS_NAME).stat().st_size < 0.6 * full
    loaded, _ = load_checkpoint(tmp_path / "half")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=tol, atol=tol)


def test_save_replaces_an_existing_checkpoint_atomically(tmp_path):
    config = micro_config()
    path = tmp_path / "ckpt"
    save_checkpoint(path, random_model(config, seed=1), config, metadata={"step": 1})
    model2 = random_model(config, seed=2)
    save_checkpoint(path, model2, config, metadata={"step": 2}, extra_files={"trainer.json": b"{}"})
    assert read_checkpoint_info(path)["metadata"]["step"] == 2
    assert (path / "trainer.json").read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp or old folders left
    assert torch.equal(_outputs(load_checkpoint(path)[0], config), _outputs(model2, config))


def test_save_refuses_to_replace_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(GlyphfuseError, match="not a glyphfuse checkpoint"):
        save_checkpoint(tmp_path, random_model(micro_config()), micro_config())
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_missing_folder_and_files(tmp_path, saved):
    with pytest.raises(GlyphfuseError, match="does not exist"):
        load_checkpoint(tmp_path / "nope")
    path, model, config = saved
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / CONFIG_NAME).write_bytes((path / CONFIG_NAME).read_bytes())
    with pytest.raises(GlyphfuseError, match=r"model\.safetensors: file is missing"):
        load_checkpoint(no_weights)
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / WEIGHTS_NAME).write_bytes((path / WEIGHTS_NAME).read_bytes())
    with pytest.raises(GlyphfuseError, match=r"config\.json: file is missing"):
        load_checkpoint(no_config)


def _copy(src, dst):
    dst.mkdir()
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        (dst / name).write_bytes((src / name).read_bytes())
    return dst


def test_truncated_safetensors_is_a_clear_error(tmp_path, saved):
    path = _copy(saved[0], tmp_path / "broken")
    data = (path / WEIGHTS_NAME).read_bytes()
    for cut in (len(data) // 2, 5, 0):
        (path / WEIGHTS_NAME).write_bytes(data[:cut])
        with pytest.raises(GlyphfuseError, match=r"model\.safetensors: truncated or corrupt"):
            load_checkpoint(path)


def test_invalid_config_json_is_a_clear_error(tmp_path, saved):
    path = _copy(saved[0], tmp_path / "badjson")
    (path / CONFIG_NAME).write_text("{not json")
    with pytest.raises(GlyphfuseError, match=r"config\.json: not valid JSON"):
        load_checkpoint(path)
    (path / CONFIG_NAME).write_text(json.dumps({"model": {"image_sise": 32}}))
    with pytest.raises(GlyphfuseError, match=r"config\.json.*image_sise"):
        load_checkpoint(path)


def test_config_that_does_not_match_the_tensors_is_a_clear_error(tmp_path, saved):
    path = _copy(saved[0], tmp_path / "edited")
    header = json.loads((path / CONFIG_NAME).read_text())
    header["model"]["unet"]["base_channels"] = 16
    (path / CONFIG_NAME).write_text(json.dumps(header))
    with pytest.raises(GlyphfuseError, match=r"weights do not match the model config.*shape mismatch.*\(file vs config\)"):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors_are_named(tmp_path, saved):
    path = _copy(saved[0], tmp_path / "renamed")
    tensors = load_safetensors(path / WEIGHTS_NAME)
    name = sorted(tensors)[0]
    tensors["extra.weight"] = tensors.pop(name)
    save_safetensors_atomic(path / WEIGHTS_NAME, tensors)
    with pytest.raises(GlyphfuseError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert f"1 missing tensor(s): {name}" in message and "1 unexpected tensor(s): extra.weight" in message
    assert str(path / WEIGHTS_NAME) in message


def test_atomic_writers(tmp_path):
    write_json_atomic(tmp_path / "a" / "x.json", {"b": [1, 2], "ü": "ß"})
    assert json.loads((tmp_path / "a" / "x.json").read_text(encoding="utf-8")) == {"b": [1, 2], "ü": "ß"}
    shared = torch.arange(6.0)
    save_safetensors_atomic(tmp_path / "t.safetensors", {"a": shared, "b": shared[:3]}, metadata={"step": 5})
    loaded = load_safetensors(tmp_path / "t.safetensors")
    assert torch.equal(loaded["a"], shared) and torch.equal(loaded["b"], shared[:3])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "t.safetensors"]


# -- sharded weights (glyphfuse.core.shards) and export ------------------------------------------

SHARD_LIMIT = 60_000  # bytes: the micro model's fp16 weights need several shards


@pytest.fixture()
def sharded(tmp_path):
    config = micro_config()
    model = random_model(config)
    path = save_checkpoint(tmp_path / "sharded", model, config, dtype="float16", max_shard_bytes=SHARD_LIMIT, metadata={"step": 3})
    return path, model, config


def test_sharded_checkpoint_round_trip_and_layout(sharded):
    from glyphfuse.core.shards import INDEX_NAME, shard_name

    path, model, config = sharded
    shards = sorted(p.name for p in path.glob("model-*.safetensors"))
    assert len(shards) >= 3 and shards == [shard_name(i, len(shards)) for i in range(1, len(shards) + 1)]
    assert not (path / WEIGHTS_NAME).exists()
    assert all((path / name).stat().st_size <= SHARD_LIMIT for name in shards)
    index = json.loads((path / INDEX_NAME).read_text())
    assert set(index["weight_map"]) == set(model.state_dict()) and set(index["weight_map"].values()) == set(shards)
    assert index["metadata"]["total_size"] == sum(t.numel() * (2 if t.is_floating_point() else t.element_size()) for t in model.state_dict().values())
    assert read_checkpoint_info(path)["weights_dtype"] == "float16"
    loaded, loaded_config = load_checkpoint(path)
    assert loaded_config == config
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor.half().float() if tensor.is_floating_point() else tensor), name


def test_sharded_checkpoint_problems_are_one_line_errors_naming_the_file(sharded):
    from glyphfuse.core.shards import INDEX_NAME

    path, _, _ = sharded
    index_path = path / INDEX_NAME
    index = json.loads(index_path.read_text())
    first, last = sorted(set(index["weight_map"].values()))[0], sorted(set(index["weight_map"].values()))[-1]
    data = (path / last).read_bytes()
    (path / last).write_bytes(data[: len(data) // 2])
    with pytest.raises(GlyphfuseError, match=rf"{last}: truncated or corrupt"):
        load_checkpoint(path)
    (path / last).unlink()
    with pytest.raises(GlyphfuseError, match=rf"{last}: file is missing \(listed in"):
        load_checkpoint(path)
    (path / last).write_bytes(data)
    moved = next(name for name, owner in index["weight_map"].items() if owner == first)
    index_path.write_text(json.dumps({**index, "weight_map": {**index["weight_map"], moved: last}}))
    with pytest.raises(GlyphfuseError, match=rf"{first}: does not match {INDEX_NAME}"):
        load_checkpoint(path)
    for bad_name in ("../model.safetensors", "model-00001-of-00009.safetensors"):
        index_path.write_text(json.dumps({**index, "weight_map": {**index["weight_map"], moved: bad_name}}))
        with pytest.raises(GlyphfuseError, match=rf"{INDEX_NAME}: "):
            load_checkpoint(path)
    index_path.write_text("{not json")
    with pytest.raises(GlyphfuseError, match=rf"{INDEX_NAME}: not valid JSON"):
        load_checkpoint(path)
    index_path.write_text(json.dumps(index))
    (path / WEIGHTS_NAME).write_bytes(b"")
    with pytest.raises(GlyphfuseError, match="holds both"):
        load_checkpoint(path)


def test_shard_limits_and_fp16_range_are_checked(tmp_path):
    config = micro_config()
    model = random_model(config)
    with pytest.raises(GlyphfuseError, match=r"tensor .* more than the shard limit"):
        save_checkpoint(tmp_path / "small", model, config, max_shard_bytes=1000)
    with torch.no_grad():
        next(model.parameters()).fill_(1e6)
    with pytest.raises(GlyphfuseError, match=r"beyond the range of float16; store it as bfloat16"):
        save_checkpoint(tmp_path / "big", model, config, dtype="float16")
    assert not (tmp_path / "small").exists() and not (tmp_path / "big").exists()
    save_checkpoint(tmp_path / "big", model, config, dtype="bfloat16", max_shard_bytes=SHARD_LIMIT)  # bf16 holds it


def test_sharded_checkpoint_is_replaced_like_any_checkpoint(sharded):
    path, model, config = sharded
    save_checkpoint(path, model, config)
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]
    load_checkpoint(path)


def test_export_keeps_only_the_weights_and_takes_a_card(tmp_path, saved):
    from glyphfuse.core.checkpoint import export_checkpoint

    path, model, config = saved
    training = _copy(path, tmp_path / "step_5")
    (training / "training_state.safetensors").write_bytes(b"optimizer state")
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"name": "micro", "scores": []}))
    out = export_checkpoint(training, tmp_path / "export", dtype="fp16", max_shard_bytes=SHARD_LIMIT, card=card)
    assert not (out / "training_state.safetensors").exists() and read_model_card(out) == {"name": "micro", "scores": []}
    assert read_checkpoint_info(out)["metadata"]["step"] == 12  # the source's metadata is kept
    again = export_checkpoint(out, tmp_path / "again")  # the card travels on; one fp16 file
    assert read_model_card(again)["name"] == "micro" and (again / WEIGHTS_NAME).is_file()
    with pytest.raises(GlyphfuseError, match="folder is not empty"):
        export_checkpoint(training, tmp_path / "export")
    with pytest.raises(GlyphfuseError, match="is \\(or holds\\) the input checkpoint"):
        export_checkpoint(training, training)


def test_cli_export_of_a_run_folder(tmp_path, saved):
    from typer.testing import CliRunner

    from glyphfuse.cli import app

    path, model, config = saved
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _copy(path, run / "checkpoints" / "step_12")
    (run / "checkpoints" / "latest").write_text("step_12\n")
    result = CliRunner().invoke(app, ["export", str(run), "--out", str(tmp_path / "pkg"), "--max-shard-mb", "0.05"])
    assert result.exit_code == 0, result.output
    assert "from " + str(run / "checkpoints" / "step_12") in result.output and "as fp16" in result.output
    assert len(list((tmp_path / "pkg").glob("model-*.safetensors"))) >= 2
    for args, message in ((["--out", str(tmp_path / "pkg")], "not an empty folder"), (["--out", str(tmp_path / "x"), "--dtype", "int8"], "--dtype must be")):
        result = CliRunner().invoke(app, ["export", str(run), *args])
        assert result.exit_code != 0 and message in str(result.exception or result.output)

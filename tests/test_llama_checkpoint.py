"""Converter round trips (HF -> ours -> HF, bit-exact) and clear errors for broken checkpoints."""
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from biocoach_jax.models.llama import CheckpointError, load_llama
from converters import hf_llama
from test_llama_util import LLAMA3_ROPE, hf_logits, hf_model, max_abs, ours_logits, random_ids, save


def hf_tensors(folder):
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(folder, f)))
    return out


@pytest.fixture(scope="module")
def fp32_dir(tmp_path_factory):
    hf = hf_model(10, heads=4, kv=2, vocab=777, rope=LLAMA3_ROPE)
    return hf, save(hf, tmp_path_factory.mktemp("hf32"), "sharded")


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_round_trip_is_bit_exact(fp32_dir, tmp_path, rng, dtype):
    from transformers import LlamaForCausalLM

    if dtype == "fp32":
        hf, src = fp32_dir
    else:  # a tied bf16 checkpoint stays bf16 (--dtype auto)
        hf = hf_model(11, heads=4, kv=1, tied=True, vocab=333, dtype=torch.bfloat16)
        src = save(hf, tmp_path / "hf16")
    ours_dir, back = str(tmp_path / "ours"), str(tmp_path / "back")
    assert hf_llama.main(["--hf_dir", src, "--out", ours_dir]) == 0
    assert hf_llama.main(["--from_ours", ours_dir, "--to_hf", back]) == 0
    before, after = hf_tensors(src), hf_tensors(back)
    if hf.config.tie_word_embeddings:
        before.pop("lm_head.weight", None)
    assert sorted(before) == sorted(after)
    for name in before:
        assert before[name].dtype == after[name].dtype, name
        assert torch.equal(before[name], after[name]), name
    # transformers loads the export exactly as it loads the original (same dtype handling)
    ids = random_ids(rng, (2, 16), hf.config.vocab_size)
    orig, reloaded = (LlamaForCausalLM.from_pretrained(d, dtype=hf.dtype).eval() for d in (src, back))
    np.testing.assert_array_equal(hf_logits(reloaded, ids), hf_logits(orig, ids))
    # our converted checkpoint loads too (orbax path) and keeps the stored dtype
    ours = load_llama(ours_dir, dtype=jnp.float32, param_dtype=None)
    want = hf_logits(hf.float(), ids)
    tol = 1e-4 if dtype == "fp32" else 2e-2 * float(np.abs(want).max())
    assert max_abs(ours_logits(ours, ids), want) < tol


def test_converter_refuses_to_overwrite(fp32_dir, tmp_path, capsys):
    _, src = fp32_dir
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert hf_llama.main(["--hf_dir", src, "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "x"
    assert [p for p in os.listdir(tmp_path) if ".tmp" in p] == []  # no leftover temp dirs


def test_bf16_compute_close_to_fp32(fp32_dir, rng):
    hf, src = fp32_dir
    ids = random_ids(rng, (2, 16), hf.config.vocab_size)
    got = ours_logits(load_llama(src, dtype=jnp.bfloat16), ids)
    want = hf_logits(hf, ids)
    assert got.dtype == np.float32
    assert max_abs(got, want) < 0.05 * float(np.abs(want).max())


def test_broken_checkpoint_lists_every_problem(fp32_dir, tmp_path):
    _, src = fp32_dir
    sd = hf_tensors(src)
    del sd["model.layers.1.mlp.up_proj.weight"]
    sd["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(8, 64)
    sd["model.norm.weight"] = torch.ones(64, dtype=torch.int32)
    sd["model.layers.0.mystery.weight"] = torch.zeros(3)
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copy(os.path.join(src, "config.json"), bad / "config.json")
    save_file(sd, str(bad / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as e:
        load_llama(str(bad))
    msg = str(e.value)
    assert "4 problems" in msg and "model.safetensors" in msg
    assert "missing tensor model.layers.1.mlp.up_proj.weight (shape (96, 64))" in msg
    assert "model.layers.0.self_attn.k_proj.weight" in msg and "(8, 64), expected (32, 64)" in msg
    assert "model.norm.weight" in msg and "int32" in msg
    assert "unexpected tensor model.layers.0.mystery.weight" in msg


@pytest.mark.parametrize("damage", ["truncate", "garbage_header", "corrupt_bin", "no_weights"])
def test_corrupt_files_name_the_file(fp32_dir, tmp_path, damage):
    hf, _ = fp32_dir
    folder = tmp_path / damage
    save(hf, folder, "bin" if damage == "corrupt_bin" else "safetensors")
    target = folder / ("pytorch_model.bin" if damage == "corrupt_bin" else "model.safetensors")
    data = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(data[: len(data) - 100])
    elif damage == "garbage_header":
        target.write_bytes(data[:8] + b"{not json" + data[17:])
    elif damage == "corrupt_bin":
        target.write_bytes(data[: len(data) // 2])
    else:
        target.unlink()
    with pytest.raises(CheckpointError) as e:
        load_llama(str(folder))
    assert str(folder) in str(e.value)
    if damage == "truncate":
        assert "truncated" in str(e.value)

"""Stage `lm`: pretrain a tiny LLaMA from scratch on text (next-token prediction).

Corpus: `data.text_file` (one document per line) or, when empty, the feedback texts of the
QEVD-layout split `data.data_dir`/`data.split` (the synthetic world's coaching language).
Every line is encoded with BOS and EOS, all lines are concatenated into one token stream, and
the stream is cut into rows of `data.max_tokens + 1` (inputs = row[:-1], targets = row[1:]) -
the usual packing, no padding. The last `data.eval_rows` rows are held out for eval.
`data.context_loss=False` leaves the context segments (C_motion, C_morph) out of the loss.
The tokenizer at `tokenizer.path` is trained on the corpus first (BPE, `tokenizer.vocab_size`)
when that directory does not exist yet. Product: `<workdir>/llama`, an HF LLaMA directory
(safetensors + config.json via `converters.hf_llama.export_hf`; `load_llama` and transformers
read it): the next stages' `llm.path`.
"""
from __future__ import annotations

import pathlib

import grain
import jax.numpy as jnp
import numpy as np
from flax import nnx

from biocoach_jax.models.llama import Llama, LlamaConfig
from biocoach_jax.tokenizer import Tokenizer, train_bpe_tokenizer
from biocoach_jax.training import mesh as mesh_lib
from biocoach_jax.training.tasks import Task, host_tokens, process_rows, weighted_ce


def corpus_lines(cfg) -> list[str]:
    text_file = cfg.data.get("text_file", "")
    if text_file:
        path = pathlib.Path(text_file)
        if not path.is_file():
            raise FileNotFoundError(f"data.text_file {path}: not found")
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
        source = str(path)
    else:
        from biocoach_jax.data import qevd, session
        path = session.split_dir(cfg.data.data_dir, cfg.data.split) / qevd.RECORDS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no feedback file (set data.text_file, or point "
                                    "data.data_dir at a QEVD-layout folder, e.g. the synthetic world)")
        workouts = qevd.read_feedbacks_json(path, check_files=False)
        lines = [s.text for w in workouts for s in w.spans]
        source = str(path)
    lines = [ln for ln in lines if ln]
    if not lines:
        raise ValueError(f"{source}: the text corpus is empty")
    return lines


def load_or_train_tokenizer(cfg) -> Tokenizer:
    path = pathlib.Path(cfg.tokenizer.path)
    if path.is_dir():
        return Tokenizer.load(path)
    size = int(cfg.tokenizer.get("vocab_size", 0))
    if size <= 0:
        raise FileNotFoundError(f"tokenizer.path {path}: not found (set tokenizer.vocab_size > 0 "
                                "to train one on the corpus)")
    return train_bpe_tokenizer(corpus_lines(cfg), size, path, seed=int(cfg.seed))


def pack_rows(lines, tok: Tokenizer, length: int, context_loss: bool = True) -> np.ndarray:
    """(R, 2, length + 1) int32: per row the concatenated token stream (channel 0) and whether
    each token is a prediction target that counts in the loss (channel 1; the tail is dropped).
    With `context_loss=False` the context segments (`<motion> ... <motion/>`, `<morph> ...
    <morph/>`, markers included) do not count: they are evidence the model reads, never text it
    writes, so the gradient goes to the feedback that quotes them."""
    stream = np.asarray([i for ln in lines for i in tok.encode(ln, bos=True, eos=True)], np.int32)
    counted = np.ones(stream.shape, np.int32)
    if not context_loss:
        for start, end in ((tok.motion_id, tok.motion_end_id), (tok.morph_id, tok.morph_end_id)):
            is_end = (stream == end).astype(np.int32)
            depth = np.cumsum((stream == start).astype(np.int32)) - np.cumsum(is_end) + is_end
            counted[depth > 0] = 0
    rows = len(stream) // (length + 1)
    if rows < 1:
        raise ValueError(f"text corpus has {len(stream)} tokens, fewer than one row of "
                         f"data.max_tokens + 1 = {length + 1}")
    n = rows * (length + 1)
    return np.stack([stream[:n].reshape(rows, length + 1), counted[:n].reshape(rows, length + 1)], 1)


def _as_batch(rows: np.ndarray) -> dict:
    return {"tokens": rows[..., 0, :-1], "targets": rows[..., 0, 1:],
            "weights": rows[..., 1, 1:].astype(np.float32)}


class LMTask(Task):
    name = "lm"

    def prepare(self, cfg, workdir):
        self.tok = load_or_train_tokenizer(cfg)
        rows = pack_rows(corpus_lines(cfg), self.tok, int(cfg.data.max_tokens),
                         bool(cfg.data.get("context_loss", True)))
        n_eval = min(int(cfg.data.get("eval_rows", 0)), len(rows) - 1)
        self.train_rows, self.eval_rows = rows[: len(rows) - n_eval], rows[len(rows) - n_eval:]

    def llama_config(self, cfg) -> LlamaConfig:
        d = dict(cfg.llm.config.to_dict() if hasattr(cfg.llm.config, "to_dict") else cfg.llm.config)
        d["vocab_size"] = max(int(d.get("vocab_size", 0)), self.tok.padded_vocab_size)
        d.update(bos_token_id=self.tok.bos_id, eos_token_id=self.tok.eos_id, pad_token_id=self.tok.pad_id)
        return LlamaConfig.from_json_dict(d, "config llm.config")

    def build_model(self, cfg, mesh):
        lcfg = self.llama_config(cfg)
        dtype = jnp.dtype(cfg.llm.get("dtype", "float32"))
        return mesh_lib.create_sharded(
            lambda: Llama(lcfg, dtype=dtype, rngs=nnx.Rngs(int(cfg.seed))), mesh)

    def trainable(self, cfg):
        from biocoach_jax.models.biocoach import trainable_filter
        return trainable_filter(cfg.train.get("trainable", "lm"))

    def loss_fn(self, cfg):
        def loss(model, batch):
            logits = model(batch["tokens"])
            return weighted_ce(logits, batch["targets"], batch["weights"])
        return loss

    def train_iterator(self, cfg, process_index, process_count):
        rows = process_rows(int(cfg.data.batch_size), process_count)
        ds = grain.MapDataset.source(self.train_rows)[process_index::process_count]
        ds = ds.shuffle(seed=int(cfg.seed)).repeat().batch(rows, drop_remainder=True).map(_as_batch)
        return iter(ds)

    def eval_batches(self, cfg):
        b = int(cfg.data.batch_size)
        r = self.eval_rows
        return [_as_batch(r[i:i + b]) for i in range(0, len(r) - b + 1, b)]

    def tokens(self, batch) -> int:
        return int(np.asarray(batch["tokens"]).size)

    def export(self, model, cfg, workdir):
        from converters.hf_llama import export_hf
        export_hf(model, str(pathlib.Path(workdir) / "llama"), overwrite=True)

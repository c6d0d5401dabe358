"""Tokenizer with the stream's special tokens, over a sentencepiece model or an HF tokenizer dir.

Special tokens (each always one id, also when it appears inside plain text):
  <vision>  <answer>  <answer/>   exactly Stream-VLM's strings: consume the next visual step,
                                  open a feedback, close a feedback.
  <motion>  <motion/>             our choice: open/close the C_motion text segment (BioCoach's
                                  kinematic evidence, re-sent before the feedback it conditions).
  <morph>   <morph/>              our choice: open/close the C_morph text segment (measurements).

Two backends:
- sentencepiece (`<dir>/tokenizer.model`, e.g. LLaMA-2's or one from `train_bpe_tokenizer`):
  missing special tokens are appended to the model as USER_DEFINED pieces, so sentencepiece
  itself keeps them whole (ids = base vocab, base+1, ...). The saved model loads unchanged with
  `transformers.LlamaTokenizer.from_pretrained(dir, add_bos_token=True)`, and our `encode`
  gives the same ids as that HF tokenizer (its dummy-prefix rule, see `encode`), which differs
  from raw `sentencepiece.encode` only at the start of the text.
- HF (`AutoTokenizer` from a local directory with tokenizer.json/tokenizer_config.json, never the
  hub): missing special tokens are added as special added tokens.
Embeddings are resized to `padded_vocab_size` (a multiple of 64, as Stream-VLM does).
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import re
import shutil
import tempfile
from typing import Iterable, Sequence

VISION = "<vision>"
ANSWER = "<answer>"
ANSWER_END = "<answer/>"
MOTION = "<motion>"
MOTION_END = "<motion/>"
MORPH = "<morph>"
MORPH_END = "<morph/>"
SPECIAL_TOKENS: tuple[str, ...] = (VISION, ANSWER, ANSWER_END, MOTION, MOTION_END, MORPH, MORPH_END)
VOCAB_MULTIPLE = 64
_META_FILE = "biocoach_tokenizer.json"
_SP_FILE = "tokenizer.model"


class TokenizerError(ValueError):
    """A tokenizer file or directory that cannot be used."""


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


class _SentencePieceBackend:
    kind = "sentencepiece"

    def __init__(self, model_bytes: bytes, source: str):
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb

        proto = pb.ModelProto()
        try:
            proto.ParseFromString(model_bytes)
        except Exception as e:  # protobuf raises its own DecodeError
            raise TokenizerError(f"{source}: not a sentencepiece model ({e})") from None
        if len(proto.pieces) == 0:
            raise TokenizerError(f"{source}: sentencepiece model has no pieces")
        user_defined = pb.ModelProto.SentencePiece.USER_DEFINED
        existing = {p.piece: p for p in proto.pieces}
        for tok in SPECIAL_TOKENS:
            # USER_DEFINED pieces are matched verbatim in raw text before segmentation.
            if tok in existing:
                existing[tok].type = user_defined
            else:
                piece = proto.pieces.add()
                piece.piece, piece.score, piece.type = tok, 0.0, user_defined
        self.model_bytes = proto.SerializeToString()
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        # Encoding follows HF's LLaMA tokenizer (Metaspace, prepend_scheme "first"): the text is
        # split at special tokens and only a leading text chunk that does not already start
        # with a space gets the dummy-prefix space. sentencepiece would put a stray "▁" before a
        # special token that opens the text, so we encode with the prefix switched off.
        self.add_prefix = proto.normalizer_spec.add_dummy_prefix
        proto.normalizer_spec.add_dummy_prefix = False
        self.sp_enc = spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
        self.split_re = re.compile("(" + "|".join(
            re.escape(t) for t in sorted(SPECIAL_TOKENS, key=len, reverse=True)) + ")")
        self.special_ids = {tok: self.sp.piece_to_id(tok) for tok in SPECIAL_TOKENS}
        self.bos_id, self.eos_id = self.sp.bos_id(), self.sp.eos_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise TokenizerError(f"{source}: sentencepiece model has no <s>/</s> pieces")
        # LLaMA-2 defines no pad piece; the unknown id then doubles as padding (masked anyway).
        self.pad_id = self.sp.pad_id() if self.sp.pad_id() >= 0 else self.sp.unk_id()
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        ids: list[int] = []
        for k, chunk in enumerate(self.split_re.split(text)):
            if k % 2:  # odd entries of re.split with one group are the separators
                ids.append(self.special_ids[chunk])
            elif chunk:
                if k == 0 and self.add_prefix and not chunk.startswith(" "):
                    chunk = " " + chunk
                ids.extend(self.sp_enc.encode(chunk))
        return ids

    def decode(self, ids: Sequence[int], skip_special: bool) -> str:
        # sentencepiece silently drops control pieces (<s>, </s>, <pad>); render them like HF,
        # decoding each run between them on its own (each run starts a new sentence).
        drop = set(self.special_ids.values()) if skip_special else set()
        out, run = [], []
        for i in ids:
            if self.sp.is_control(i):
                out.append(self.sp.decode(run))
                run = []
                if not skip_special:
                    out.append(self.sp.id_to_piece(i))
            elif i not in drop:
                run.append(i)
        out.append(self.sp.decode(run))
        return "".join(out)

    def save(self, tmp_dir: pathlib.Path) -> None:
        (tmp_dir / _SP_FILE).write_bytes(self.model_bytes)


class _HFBackend:
    kind = "hf"

    def __init__(self, directory: pathlib.Path):
        from transformers import AddedToken, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        except Exception as e:  # transformers raises many types for a bad dir
            raise TokenizerError(f"{directory}: cannot load an HF tokenizer ({e})") from None
        missing = [t for t in SPECIAL_TOKENS if t not in tok.get_vocab()]
        if missing:
            tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in missing],
                           special_tokens=True)
        self.tok = tok
        self.special_ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
        if tok.bos_token_id is None or tok.eos_token_id is None:
            raise TokenizerError(f"{directory}: tokenizer defines no bos/eos token")
        self.bos_id, self.eos_id = tok.bos_token_id, tok.eos_token_id
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else (tok.unk_token_id or 0)
        self.vocab_size = len(tok)

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int], skip_special: bool) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special)

    def save(self, tmp_dir: pathlib.Path) -> None:
        self.tok.save_pretrained(str(tmp_dir))


class Tokenizer:
    """Text <-> ids with BOS/EOS handling and the stream's special tokens (module doc)."""

    def __init__(self, backend):
        self._b = backend
        ids = list(backend.special_ids.values())
        if len(set(ids)) != len(ids) or min(ids) < 0:
            raise TokenizerError(f"special tokens did not get distinct ids: {backend.special_ids}")

    # construction ----------------------------------------------------------------------------
    @classmethod
    def from_sentencepiece(cls, model_path) -> "Tokenizer":
        path = pathlib.Path(model_path)
        if not path.is_file():
            raise TokenizerError(f"{path}: sentencepiece model file not found")
        return cls(_SentencePieceBackend(path.read_bytes(), str(path)))

    @classmethod
    def from_hf_dir(cls, directory) -> "Tokenizer":
        directory = pathlib.Path(directory)
        if not directory.is_dir():
            raise TokenizerError(f"{directory}: tokenizer directory not found")
        return cls(_HFBackend(directory))

    @classmethod
    def load(cls, directory) -> "Tokenizer":
        """Load a dir written by `save`, a plain `tokenizer.model` dir, or an HF tokenizer dir."""
        directory = pathlib.Path(directory)
        if not directory.is_dir():
            raise TokenizerError(f"{directory}: tokenizer directory not found")
        meta_path = directory / _META_FILE
        kind = None
        if meta_path.is_file():
            try:
                kind = json.loads(meta_path.read_text())["backend"]
            except (ValueError, KeyError, TypeError) as e:
                raise TokenizerError(f"{meta_path}: unreadable tokenizer metadata ({e})") from None
        has_hf = (directory / "tokenizer.json").is_file() or (directory / "tokenizer_config.json").is_file()
        if kind == "sentencepiece" or (kind is None and not has_hf):
            return cls.from_sentencepiece(directory / _SP_FILE)
        return cls.from_hf_dir(directory)

    def save(self, directory) -> None:
        """Write the tokenizer files into `directory`, each atomically (temp file + rename), so
        other files there (e.g. a checkpoint) are untouched and a crash leaves no half file."""
        directory = pathlib.Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=".tokenizer.", dir=directory))
        try:
            self._b.save(tmp)
            meta = {"backend": self._b.kind, "special_tokens": self.special_ids}
            (tmp / _META_FILE).write_text(json.dumps(meta, indent=1))
            for f in sorted(tmp.iterdir()):
                os.replace(f, directory / f.name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # encoding --------------------------------------------------------------------------------
    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        ids = self._b.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def decode(self, ids: Iterable[int], skip_special: bool = False) -> str:
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token ids out of range [0, {self.vocab_size}): {bad[:5]}")
        return self._b.decode(ids, skip_special)

    # ids ---------------------------------------------------------------------------------------
    @property
    def special_ids(self) -> dict[str, int]:
        return dict(self._b.special_ids)

    def token_id(self, token: str) -> int:
        return self._b.special_ids[token]

    @property
    def vision_id(self) -> int:
        return self._b.special_ids[VISION]

    @property
    def answer_id(self) -> int:
        return self._b.special_ids[ANSWER]

    @property
    def answer_end_id(self) -> int:
        return self._b.special_ids[ANSWER_END]

    @property
    def motion_id(self) -> int:
        return self._b.special_ids[MOTION]

    @property
    def motion_end_id(self) -> int:
        return self._b.special_ids[MOTION_END]

    @property
    def morph_id(self) -> int:
        return self._b.special_ids[MORPH]

    @property
    def morph_end_id(self) -> int:
        return self._b.special_ids[MORPH_END]

    @property
    def bos_id(self) -> int:
        return self._b.bos_id

    @property
    def eos_id(self) -> int:
        return self._b.eos_id

    @property
    def pad_id(self) -> int:
        return self._b.pad_id

    @property
    def vocab_size(self) -> int:
        return self._b.vocab_size

    @property
    def padded_vocab_size(self) -> int:
        return _round_up(self.vocab_size, VOCAB_MULTIPLE)

    @property
    def backend(self) -> str:
        return self._b.kind


def train_bpe_tokenizer(corpus_lines: Iterable[str], vocab_size: int, out_dir,
                        seed: int = 0) -> Tokenizer:
    """Train a byte-fallback BPE sentencepiece model (LLaMA-style options) for tiny configs.

    Saved as `<out_dir>/tokenizer.model` (+ our metadata); the special tokens are built in as
    USER_DEFINED pieces (ids 4..10, after <unk> <s> </s> <pad>). Deterministic: one thread,
    no input sampling, fixed generator seed.
    """
    import sentencepiece as spm

    lines = [ln for ln in (str(x).replace("\n", " ") for x in corpus_lines) if ln.strip()]
    if not lines:
        raise ValueError("train_bpe_tokenizer: empty corpus")
    minimum = 4 + len(SPECIAL_TOKENS) + 256 + 1  # control pieces + specials + 256 byte pieces
    if vocab_size < minimum:
        raise ValueError(f"train_bpe_tokenizer: vocab_size {vocab_size} < {minimum} (byte "
                         "fallback needs 256 pieces plus the control and special tokens)")
    spm.set_random_generator_seed(int(seed))
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=buf, vocab_size=int(vocab_size),
            model_type="bpe", byte_fallback=True, character_coverage=1.0,
            # identity normalisation and kept whitespace: HF's LLaMA converter applies neither
            normalization_rule_name="identity", remove_extra_whitespaces=False,
            add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True,
            unk_id=0, bos_id=1, eos_id=2, pad_id=3, user_defined_symbols=list(SPECIAL_TOKENS),
            input_sentence_size=0, shuffle_input_sentence=False, num_threads=1, minloglevel=2)
    except RuntimeError as e:
        raise ValueError(f"train_bpe_tokenizer: sentencepiece training failed ({e})") from None
    tok = Tokenizer(_SentencePieceBackend(buf.getvalue(), "<trained>"))
    tok.save(out_dir)
    return tok

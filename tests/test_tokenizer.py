"""Tokenizer: our encode against HF LlamaTokenizer, special tokens, save/load, determinism."""
import io

import numpy as np
import pytest

from biocoach_jax import tokenizer as tk

WORDS = ("keep your chest up knees out hips back lower slowly great job push through heels "
         "squat lunge plank elbows shoulders core tight breathe rep reps nice form deeper "
         "arms straight left right side two three ten seconds more").split()
# Characters outside the training corpus: byte fallback must cover them.
RARE = ["Ü", "é", "☃", "😀", "ß", "\t", "—", "ñ", "€", "'", '"', "%"]


def coaching_corpus(rng, n):
    out = []
    for _ in range(n):
        k = int(rng.integers(3, 14))
        words = list(rng.choice(WORDS, size=k))
        if rng.random() < 0.4:
            words.insert(int(rng.integers(0, k)), str(int(rng.integers(0, 200))))
        out.append(" ".join(words).capitalize() + str(rng.choice(["!", ".", "?", ""])))
    return out


def random_sentence(rng):
    """A fresh sentence mixing corpus words, rare characters, digits and odd spacing."""
    parts = []
    for _ in range(int(rng.integers(1, 12))):
        r = rng.random()
        if r < 0.6:
            parts.append(str(rng.choice(WORDS)))
        elif r < 0.8:
            parts.append(str(rng.choice(RARE)) * int(rng.integers(1, 3)))
        else:
            parts.append(str(int(rng.integers(0, 10**6))))
    seps = rng.choice([" ", " ", " ", "  ", ", ", "\t"], size=len(parts))
    text = "".join(p + s for p, s in zip(parts, seps)).rstrip(" ")
    return text


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(1234)  # the model itself is fixed; test inputs are fresh
    out = tmp_path_factory.mktemp("tok") / "bpe"
    tok = tk.train_bpe_tokenizer(coaching_corpus(rng, 600), 420, out, seed=7)
    return tok, out


def test_trained_model_layout(trained):
    tok, out = trained
    assert (out / "tokenizer.model").is_file()
    assert tok.vocab_size == 420
    assert tok.padded_vocab_size % 64 == 0
    assert tok.vocab_size <= tok.padded_vocab_size < tok.vocab_size + 64
    assert (tok.bos_id, tok.eos_id, tok.pad_id) == (1, 2, 3)
    assert set(tok.special_ids) == set(tk.SPECIAL_TOKENS)
    assert tok.vision_id != tok.answer_id != tok.answer_end_id
    assert tok.token_id("<motion>") == tok.motion_id and tok.morph_end_id == tok.special_ids["<morph/>"]


def test_encode_matches_hf_llama_tokenizer(trained, rng):
    from transformers import LlamaTokenizer

    tok, out = trained
    hf = LlamaTokenizer.from_pretrained(str(out), add_bos_token=True)
    n_checked = 0
    for _ in range(60):
        s = random_sentence(rng)
        ours = tok.encode(s)
        assert ours == hf.encode(s), s
        assert tok.decode(ours, skip_special=True) == s
        n_checked += 1
    # sentences with stream markers in them: same single ids as HF's added tokens
    for _ in range(20):
        a, b = random_sentence(rng), random_sentence(rng)
        marker = str(rng.choice(tk.SPECIAL_TOKENS))
        for s in (f"{a}{marker}{b}", f"{marker}{a} {marker}", f" {a}{marker} {b}", f"  {a}"):
            assert tok.encode(s) == hf.encode(s), s
    assert n_checked == 60


def test_special_tokens_single_ids_and_roundtrip(trained, rng):
    tok, _ = trained
    for name, tid in tok.special_ids.items():
        assert tok.encode(name, bos=False) == [tid]
        assert tok.decode([tid]) == name
    # plain text containing markers maps each marker to its single id, in order
    markers = list(rng.choice(tk.SPECIAL_TOKENS, size=6))
    chunks = [random_sentence(rng) for _ in markers]
    text = "".join(c + m for c, m in zip(chunks, markers))
    ids = tok.encode(text, bos=True, eos=True)
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    special_set = set(tok.special_ids.values())
    assert [i for i in ids if i in special_set] == [tok.special_ids[m] for m in markers]
    assert tok.decode(ids[1:-1]) == text
    assert tok.decode(ids) == "<s>" + text + "</s>"
    assert tok.decode(ids, skip_special=True) == "".join(chunks)
    # a marker never comes out of ordinary text that merely resembles it
    assert tok.vision_id not in tok.encode("<vis ion> vision <visio>", bos=False)


def test_save_load_roundtrip(trained, tmp_path, rng):
    tok, _ = trained
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy/checkpoint.bin").write_bytes(b"keep me")
    tok.save(tmp_path / "copy")
    tok.save(tmp_path / "copy")  # overwriting replaces our files only, leaves no temp files
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == [
        "biocoach_tokenizer.json", "checkpoint.bin", "tokenizer.model"]
    assert (tmp_path / "copy/checkpoint.bin").read_bytes() == b"keep me"
    back = tk.Tokenizer.load(tmp_path / "copy")
    assert back.special_ids == tok.special_ids and back.vocab_size == tok.vocab_size
    for _ in range(10):
        s = random_sentence(rng) + str(rng.choice(tk.SPECIAL_TOKENS))
        assert back.encode(s, eos=True) == tok.encode(s, eos=True)


def test_training_is_deterministic(tmp_path, rng):
    corpus = coaching_corpus(rng, 300)
    a = tk.train_bpe_tokenizer(corpus, 400, tmp_path / "a", seed=3)
    b = tk.train_bpe_tokenizer(corpus, 400, tmp_path / "b", seed=3)
    assert (tmp_path / "a/tokenizer.model").read_bytes() == (tmp_path / "b/tokenizer.model").read_bytes()
    s = random_sentence(rng)
    assert a.encode(s) == b.encode(s)


def _raw_bpe_model_without_specials(rng) -> bytes:
    """A LLaMA-like sentencepiece model (no stream tokens, no pad piece), trained directly."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(coaching_corpus(rng, 300)), model_writer=buf, vocab_size=400,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    return buf.getvalue()


def test_foreign_models_get_appended_special_ids(tmp_path, rng):
    from transformers import LlamaTokenizer

    (tmp_path / "raw").mkdir()
    (tmp_path / "raw/tokenizer.model").write_bytes(_raw_bpe_model_without_specials(rng))
    sp = tk.Tokenizer.from_sentencepiece(tmp_path / "raw/tokenizer.model")
    expected = {t: 400 + i for i, t in enumerate(tk.SPECIAL_TOKENS)}
    assert sp.special_ids == expected and sp.vocab_size == 407 and sp.padded_vocab_size == 448
    assert sp.pad_id == 0  # no pad piece: unk doubles as padding

    # the same model as an HF tokenizer dir (tokenizer.json): specials become added tokens
    LlamaTokenizer.from_pretrained(str(tmp_path / "raw")).save_pretrained(str(tmp_path / "hf"))
    hf = tk.Tokenizer.load(tmp_path / "hf")
    assert hf.backend == "hf" and hf.special_ids == expected and hf.vocab_size == 407
    for name, tid in expected.items():
        assert hf.encode(f"keep {name} up", bos=False).count(tid) == 1
        assert hf.decode([tid]) == name
    s = random_sentence(rng)
    assert hf.encode(s) == sp.encode(s)
    hf.save(tmp_path / "hf2")
    assert tk.Tokenizer.load(tmp_path / "hf2").special_ids == expected


def test_bad_inputs(tmp_path):
    with pytest.raises(tk.TokenizerError, match="not found"):
        tk.Tokenizer.load(tmp_path / "nope")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk/tokenizer.model").write_bytes(b"\x00garbage")
    with pytest.raises(tk.TokenizerError, match="junk"):
        tk.Tokenizer.load(tmp_path / "junk")
    with pytest.raises(ValueError, match="vocab_size"):
        tk.train_bpe_tokenizer(["a b c"], 100, tmp_path / "small")
    with pytest.raises(ValueError, match="empty corpus"):
        tk.train_bpe_tokenizer(["", "  "], 400, tmp_path / "empty")


def test_decode_rejects_out_of_range(trained):
    tok, _ = trained
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([5, tok.vocab_size])

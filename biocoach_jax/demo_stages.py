"""The demo's steps: each `run(ctx)` does its work into the workdir, each `done(ctx)` says
whether the workdir already holds its product (so a re-run skips it and an interrupted run
resumes; `train` itself resumes a stage from its last checkpoint).

Workdir layout (`ctx.root`):
    data/                       synthetic world (QEVD layout, both splits) + cached features
    tokenizer/                  BPE tokenizer        lm_corpus.txt   the LM's pretraining text
    lm/llama/                   tiny LLaMA (HF)      vision/vision_cnn/   tiny CNN
    streamvlm/ biocoach/ ablations/<name>/        runs: checkpoints/, metrics.jsonl, model/
    eval/<system>.json          one table row per system      table.md table.json summary.json
"""
from __future__ import annotations

import dataclasses
import json
import pathlib

from biocoach_jax.io_utils import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Plan:
    """Demo scale: the full demo (target <= 15 min on 2 cores; 11.0 min measured), --quick
    (<= 3 min; ~110 s measured) or --long. The tiny LM learns to copy numbers from its context
    only after ~3M tokens of pretraining (an abrupt transition: 1.6M tokens gave 8% of the
    benchmark's feedback numbers right under teacher forcing, 3M gave 56%; measured before
    counts quoted poses); before it, BioCoach quotes C_motion unreliably. --long pays for that
    (~9 min of LM pretraining) and coaches a larger benchmark."""
    name: str = "full"
    train_sessions: int = 24
    benchmark_sessions: int = 3
    seed: int = 0
    steps: tuple = (("lm", 400), ("vision", 60), ("streamvlm", 150), ("biocoach", 100),
                    ("ablation", 100))
    bertscore: bool = True
    rtf_segments: int = 2
    stage_eval: bool = True          # eval loss/accuracy of each coaching stage on the benchmark
    lm_rows: tuple = (8, 256)        # LM batch: rows x tokens
    quote_copies: int = 0            # number-shifted copies of each (C_motion, feedback) pair

    def stage_steps(self, kind: str) -> int:
        return dict(self.steps)[kind]


FULL = Plan()
QUICK = Plan(name="quick", train_sessions=4, benchmark_sessions=1,
             steps=(("lm", 40), ("vision", 8), ("streamvlm", 16), ("biocoach", 8),
                    ("ablation", 4)),
             bertscore=False, rtf_segments=1, stage_eval=False)
LONG = Plan(name="long", benchmark_sessions=8,
            steps=(("lm", 1500), ("vision", 60), ("streamvlm", 300), ("biocoach", 100),
                   ("ablation", 100)),
            lm_rows=(2, 1024), quote_copies=10)

SYSTEMS = (("streamvlm", "Stream-VLM"), ("streamvlm_colloquial", "Stream-VLM (colloquial)"),
           ("biocoach", "BioCoach"),
           ("no_dof_selection", "w/o DoF selection"), ("no_motion_context", "w/o motion context"),
           ("no_morphology", "w/o morphology"), ("window_2s", "window 2 s"),
           ("rule_based", "rule-based"))


@dataclasses.dataclass
class Context:
    root: pathlib.Path
    plan: Plan
    show_progress: bool = True

    @property
    def data_dir(self) -> pathlib.Path:
        return self.root / "data"

    def run_dir(self, key: str) -> pathlib.Path:
        if key in ("streamvlm", "streamvlm_colloquial", "biocoach"):
            return self.root / key
        return self.root / "ablations" / key

    def config(self, key: str):
        """The config of a training run ('lm', 'vision', 'streamvlm', 'biocoach', ablation)."""
        from configs.tiny import ablation, biocoach, lm, streamvlm, vision

        root = str(self.root)
        if key == "lm":
            c, kind = lm.make(root), "lm"
            c.data.text_file = str(self.root / "lm_corpus.txt")
            c.data.batch_size, c.data.max_tokens = self.plan.lm_rows
        elif key == "vision":
            c, kind = vision.make(root), "vision"
        elif key in ("streamvlm", "streamvlm_colloquial"):
            wording = "colloquial" if key == "streamvlm_colloquial" else "anatomical"
            c, kind = streamvlm.make(root, wording), "streamvlm"
        elif key == "biocoach":
            c, kind = biocoach.make(root), "biocoach"
        else:
            c, kind = ablation.make(key, root), "ablation"
        c.seed = self.plan.seed
        c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 1, 1, 1   # one CPU device
        c.train.steps = self.plan.stage_steps(kind)
        c.train.eval_every = c.train.checkpoint_every = c.train.steps
        if kind in ("streamvlm", "biocoach", "ablation") and not self.plan.stage_eval:
            c.train.eval_every = 0
        if kind == "vision":     # its eval renders and runs hundreds of clips: train metrics only
            c.train.eval_every = 0
            c.data.batch_size = 8
        c.train.async_checkpoint = False
        c.train.progress = self.show_progress
        c.optimizer.warmup_steps = min(int(c.optimizer.warmup_steps), max(1, c.train.steps // 10))
        return c


# ---- data --------------------------------------------------------------------------------------
def data_done(ctx: Context) -> bool:
    from biocoach_jax.data import qevd
    from biocoach_jax.data.synth.writer import SPLIT_DIRS
    return all((ctx.data_dir / d / qevd.RECORDS_FILE).is_file() for d in SPLIT_DIRS.values())


def data_run(ctx: Context) -> str:
    from biocoach_jax.data.synth import SynthConfig, write_split
    from configs.tiny.vision import make

    size = tuple(int(s) for s in make().vision.frame_size)
    for split, n in (("train", ctx.plan.train_sessions), ("benchmark", ctx.plan.benchmark_sessions)):
        cfg = SynthConfig(ctx.data_dir, split, n, ctx.plan.seed, size, True)
        write_split(cfg, 1, progress=ctx.show_progress)
    return f"{ctx.plan.train_sessions} train + {ctx.plan.benchmark_sessions} benchmark sessions"


# ---- tokenizer and LM --------------------------------------------------------------------------
def tokenizer_done(ctx: Context) -> bool:
    return (ctx.root / "tokenizer").is_dir()


def tokenizer_run(ctx: Context) -> str:
    from biocoach_jax.data.session import load_segments
    from biocoach_jax.demo_corpus import split_texts, tokenizer_lines
    from biocoach_jax.tokenizer import train_bpe_tokenizer

    lines = tokenizer_lines(load_segments(ctx.data_dir, "train"), ctx.config("biocoach"),
                            split_texts(ctx.data_dir))
    size = int(ctx.config("lm").tokenizer.vocab_size)
    tok = train_bpe_tokenizer(lines, size, ctx.root / "tokenizer",
                              seed=ctx.plan.seed)
    return f"{len(lines)} distinct lines, vocabulary {tok.vocab_size}"


def _corpus(ctx: Context) -> pathlib.Path:
    path = ctx.root / "lm_corpus.txt"
    if not path.is_file():
        from biocoach_jax.data.session import load_segments
        from biocoach_jax.demo_corpus import lm_documents, split_texts
        from biocoach_jax.tokenizer import Tokenizer

        docs = lm_documents(load_segments(ctx.data_dir, "train"), Tokenizer.load(ctx.root / "tokenizer"),
                            ctx.config("biocoach"), split_texts(ctx.data_dir), ctx.plan.quote_copies)
        atomic_write_text(path, "\n".join(docs) + "\n")
    return path


def _product_done(path: pathlib.Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def train_stage(ctx: Context, key: str) -> str:
    from biocoach_jax.train import train

    if key == "lm":
        _corpus(ctx)
    result = train(ctx.config(key), ctx.run_dir(key) if key not in ("lm", "vision") else ctx.root / key)
    last = result.history[-1] if result.history else {}
    return ", ".join(f"{k} {last[k]:.3f}" for k in ("loss", "token_acc", "feedback_acc",
                                                    "exercise_acc", "phase_acc") if k in last)


def lm_done(ctx: Context) -> bool:
    return _product_done(ctx.root / "lm" / "llama")


def vision_done(ctx: Context) -> bool:
    return _product_done(ctx.root / "vision" / "vision_cnn")


def run_done(ctx: Context, key: str) -> bool:
    from biocoach_jax.models.biocoach import EXTRA_PARAMS
    return (ctx.run_dir(key) / "model" / EXTRA_PARAMS).is_file()


# ---- features ----------------------------------------------------------------------------------
def _feature_outputs(ctx: Context):
    from biocoach_jax.data import qevd
    from biocoach_jax.data.session import split_dir
    from biocoach_jax.extract_features import outputs_for

    for split in ("train", "benchmark"):
        root = split_dir(ctx.data_dir, split)
        for w in qevd.read_feedbacks_json(root / qevd.RECORDS_FILE, check_files=False):
            yield outputs_for(root, w.video_file)


def features_done(ctx: Context) -> bool:
    from biocoach_jax.extract_features import is_done
    return data_done(ctx) and all(is_done(f, t) for f, t in _feature_outputs(ctx))


def features_run(ctx: Context) -> str:
    from biocoach_jax.extract_features import extract_split, load_vision_model

    cfg = ctx.config("streamvlm")
    model = load_vision_model(cfg)
    counts = [extract_split(cfg, ctx.data_dir, s, model=model, progress=ctx.show_progress)
              for s in ("train", "benchmark")]
    return f"{sum(c['done'] for c in counts)} video(s) extracted"


# ---- evaluation --------------------------------------------------------------------------------
def eval_path(ctx: Context, key: str) -> pathlib.Path:
    return ctx.root / "eval" / f"{key}.json"


def load_system(ctx: Context, key: str):
    """The trained coach of run `key` (None = the rule-based coach)."""
    if key == "rule_based":
        return None
    from biocoach_jax.coaching.loading import coach_from_config
    return coach_from_config(ctx.config(key), ctx.run_dir(key))


def eval_run(ctx: Context, key: str, label: str, segments) -> str:
    from biocoach_jax.evaluate import evaluate_systems

    row = evaluate_systems(segments, [(label, load_system(ctx, key))], bertscore=ctx.plan.bertscore,
                           show_progress=ctx.show_progress)[0]
    path = eval_path(ctx, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(row, indent=1))
    m = row["metrics"]
    return f"METEOR {m['meteor']:.3f}, bio-fact acc {m.get('bio_all_acc', float('nan')):.3f}"


def real_time_factor(ctx: Context, segments, key: str = "biocoach") -> dict:
    """Wall time / media time of the tiny BioCoach coach streaming video + poses (after one
    warm-up segment, so compilation is not counted)."""
    from biocoach_jax.coaching import run_coach, sources

    loaded = load_system(ctx, key)
    runs = []
    for seg in [segments[0]] + list(segments[:ctx.plan.rtf_segments]):
        coach = sources.make_coach(seg.exercise, loaded=loaded, measurements=seg.measurements,
                                   present=None if seg.poses is None else seg.poses.present)
        events = sources.segment_events(seg, with_video=True, size=sources.frame_size(loaded))
        runs.append(run_coach(coach, events, end_s=seg.end_s - seg.start_s))
    timed = runs[1:]
    media = sum(r.media_s for r in timed)
    wall = sum(r.wall_s for r in timed)
    return {"system": key, "media_s": media, "wall_s": wall, "real_time_factor": wall / media}

"""Drafting benchmark: the 124M GPT-2 architecture (random weights) on CPU.

Tokens/s at batch 1 and 8 through sitegen's generation path (per-draft seeded sampler, batch
guard, left padding) against a bare `model.generate(do_sample=True)` loop in the same run
(target: >= 85 % of bare throughput at batch 8); time to first token of `sitegen draft`
including the model load (a fresh process, cold and warm weights-hash cache); whether batch 1
and batch 8 give the same drafts.

    python benchmarks/bench_drafts.py [--tokens 48] [--repeats 3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

EOS = "<|endoftext|>"


def write_tokenizer(folder: Path, vocab_size: int = 50257) -> None:
    """A byte-level BPE with GPT-2's vocabulary size: 256 bytes, synthetic merges, EOS last."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2TokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    alphabet.sort()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    tokens = list(alphabet)
    letters = [c for c in alphabet if c.isalpha() and c.isascii()] + ["Ġ"]
    merges: list[tuple[str, str]] = []
    rng = random.Random(0)
    while len(vocab) < vocab_size - 1:
        left = rng.choice(tokens[-2000:] if len(tokens) > 2000 and rng.random() < 0.7 else tokens)
        right = rng.choice(letters)
        new = left + right
        if new in vocab or len(new) > 16:
            continue
        vocab[new] = len(vocab)
        tokens.append(new)
        merges.append((left, right))
    vocab[EOS] = len(vocab)
    tk = Tokenizer(models.BPE(vocab, merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tok = GPT2TokenizerFast(tokenizer_object=tk, bos_token=EOS, eos_token=EOS, unk_token=EOS)
    tok.add_special_tokens({"eos_token": EOS})
    assert len(tok) == vocab_size and tok.eos_token_id == vocab_size - 1
    tok.save_pretrained(folder)


def write_model(folder: Path) -> None:
    """GPT2Config() is the 124M architecture; weights are random (compute per token is what counts)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config())
    model.save_pretrained(folder)
    write_tokenizer(folder)


PROFILE = """\
name: {name}
tagline: {tagline}
stage: seed
sectors: [{sector}]
founded: 2021
hq: {hq}
canvas:
  customer_segments: [{segments}]
drafts: [summary]
"""


def write_project(folder: Path, model: Path, tokens: int) -> Path:
    """Eight profiles whose prompts differ in length, so batch 8 really pads on the left."""
    rng = random.Random(1)
    sectors = ["fintech", "health", "legal", "energy", "retail", "media", "security", "biotech"]
    (folder / "content" / "startups").mkdir(parents=True)
    (folder / "sitegen.yaml").write_text(
        f"title: Bench\nlanguage: en\nsearch: {{enabled: false}}\ndraft:\n  model: {model}\n"
        f"  max_new_tokens: {tokens}\n  batch_size: 8\n  time_limit: 600\n",
        encoding="utf-8",
    )
    for i, sector in enumerate(sectors):
        segs = ", ".join(["banks", "clinics", "courts", "farms", "shops", "studios", "labs", "ports"][: 1 + i])
        (folder / "content" / "startups" / f"co{i}.yaml").write_text(
            PROFILE.format(name=f"Company {i}", tagline=f"AI for {sector}", sector=sector, hq=rng.choice(["Berlin", "Paris", "Shenzhen"]), segments=segs),
            encoding="utf-8",
        )
    return folder


def load_prompts(project: Path) -> list[str]:
    from generator.config import load_config
    from generator.content import load_content
    from generator.commands.draft import DraftOptions, collect_plan, render_prompts

    config, _ = load_config(project)
    content, _ = load_content(project, config)
    planned, _, _ = collect_plan(project, content.profiles, content.reports, DraftOptions(force=True))
    render_prompts(project, planned, content.profiles, config, config.draft.seed)
    return [p.prompt for p in planned]


def bench_generation(model_dir: Path, prompts: list[str], tokens: int, repeats: int) -> dict:
    import torch

    from generator.services.drafts import (
        DraftRequest,
        GenerationSettings,
        TransformersGenerator,
        derive_seed,
        load_generator,
        resolve_model,
    )

    info = resolve_model(str(model_dir), model_dir.parent)
    one = load_generator(info, GenerationSettings(batch_size=1, device="cpu", time_limit=600))
    # Batch 8 shares the loaded model and tokenizer: one load, as in `sitegen draft`.
    eight = TransformersGenerator(info, one.tokenizer, one.model, GenerationSettings(batch_size=8, device="cpu", time_limit=600), "cpu")
    gens = {1: one, 8: eight}
    model, tok = one.model, one.tokenizer
    eos = tok.eos_token_id
    # EOS is suppressed in both paths, so every run produces exactly `tokens` per prompt.
    bias = torch.zeros(model.config.vocab_size)
    bias[eos] = float("-inf")

    class NoEos:
        def __call__(self, input_ids, scores):
            return scores + bias

    orig_generate = model.generate

    def generate_no_eos(*args, **kwargs):
        from transformers import LogitsProcessorList

        procs = kwargs.pop("logits_processor", None) or LogitsProcessorList()
        kwargs["logits_processor"] = LogitsProcessorList([NoEos(), *procs])
        return orig_generate(*args, **kwargs)

    model.generate = generate_no_eos
    lengths = [len(one.encode_prompt(p, tokens)[0]) for p in prompts]
    print(f"prompt lengths {min(lengths)}…{max(lengths)} tokens", flush=True)
    requests = [DraftRequest(f"co{i}/summary", p, derive_seed(1234, f"co{i}", "summary"), tokens) for i, p in enumerate(prompts)]

    # Batch 1 runs on the first half of the prompts only: it is the slow case, and tokens/s is a rate.
    subset = {1: len(prompts) // 2, 8: len(prompts)}

    def sitegen(batch: int) -> tuple[float, list[str]]:
        t = time.perf_counter()
        outs = gens[batch].generate(requests[: subset[batch]])
        wall = time.perf_counter() - t
        assert all(o.new_tokens == tokens for o in outs), [o.new_tokens for o in outs]
        return wall, [o.text for o in outs]

    def bare(batch: int) -> float:
        tok.padding_side = "left"
        tok.pad_token = EOS
        t = time.perf_counter()
        chosen = prompts[: subset[batch]]
        encoded = [tok(p, add_special_tokens=False, split_special_tokens=True)["input_ids"][-one.settings.max_prompt_tokens :] for p in chosen]
        order = sorted(range(len(chosen)), key=lambda i: len(encoded[i]))
        for start in range(0, len(order), batch):
            chunk = [{"input_ids": encoded[i]} for i in order[start : start + batch]]
            enc = tok.pad(chunk, return_tensors="pt")
            with torch.inference_mode():
                out = generate_no_eos(
                    **enc, do_sample=True, temperature=0.8, top_p=0.95, top_k=0, max_new_tokens=tokens, min_new_tokens=0, pad_token_id=eos
                )
            assert out.shape[1] - enc["input_ids"].shape[1] == tokens
        return time.perf_counter() - t

    warm = [DraftRequest(r.key, r.prompt, r.seed, 2) for r in requests[:2]]
    gens[8].generate(warm)  # warm-up: first calls allocate and pick kernels
    best: dict[str, float] = {}
    texts: dict[int, list[str]] = {}
    for _ in range(repeats):
        for batch in (1, 8):
            wall, texts[batch] = sitegen(batch)
            best[f"sitegen{batch}"] = min(best.get(f"sitegen{batch}", 1e9), wall)
            bare_wall = bare(batch)
            best[f"bare{batch}"] = min(best.get(f"bare{batch}", 1e9), bare_wall)
            print(f"  batch {batch}: sitegen {wall:.1f}s, bare {bare_wall:.1f}s", flush=True)
    same = sum(a == b for a, b in zip(texts[1], texts[8]))
    rates = {k: tokens * subset[int(k[-1])] / v for k, v in best.items()}
    return {"rates": rates, "same": same, "compared": len(texts[1]), "threads": torch.get_num_threads()}


TTFT_SCRIPT = """
import time, sys, json
t0 = time.perf_counter()
from pathlib import Path
from generator.commands.draft import draft, DraftOptions
t_import = time.perf_counter() - t0
r = draft(Path(sys.argv[1]), DraftOptions(force=True, progress=False))
assert not r.failed, [d.format() for d in r.diagnostics]
print(json.dumps({"import": t_import, "first_token": t_import + r.first_token_seconds, "total": time.perf_counter() - t0,
                  "written": len(r.written), "tokens": r.new_tokens, "gen_seconds": r.seconds}))
"""


def bench_ttft(project: Path) -> list[dict]:
    """`sitegen draft` in a fresh process: time to first token including imports and the model load."""
    runs = []
    for _ in range(2):  # cold weights-hash cache, then warm
        out = subprocess.run([sys.executable, "-c", TTFT_SCRIPT, str(project)], cwd=ROOT, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(out.stderr[-3000:])
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=24, help="new tokens per draft")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    started = time.perf_counter()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-drafts-"))
    model_dir = base / "gpt2-124m-random"
    try:
        if not (model_dir / "model.safetensors").is_file():
            t = time.perf_counter()
            write_model(model_dir)
            print(f"built 124M GPT-2 with random weights in {time.perf_counter() - t:.1f}s -> {model_dir}")
        project = base / "project"
        shutil.rmtree(project, ignore_errors=True)
        # The fresh-process runs only need the first token and a complete write: 8 tokens each.
        write_project(project, model_dir, 8)
        prompts = load_prompts(project)
        print(f"{len(prompts)} prompts; running (a few minutes on 2 busy cores)…", flush=True)

        t = time.perf_counter()
        ttft = bench_ttft(project)
        print(f"fresh-process runs {time.perf_counter() - t:.1f}s", flush=True)
        gen = bench_generation(model_dir, prompts, args.tokens, args.repeats)
        r = gen["rates"]
        print(
            f"\nGPT-2 124M, CPU, {gen['threads']} threads, {args.tokens} new tokens per draft "
            f"(batch 8: {len(prompts)} drafts, batch 1: {len(prompts) // 2}), best of {args.repeats}"
        )
        print(f"{'':<10}{'bare generate':>16}{'sitegen':>12}{'ratio':>9}")
        for b in (1, 8):
            ratio = r[f"sitegen{b}"] / r[f"bare{b}"]
            print(f"batch {b:<4}{r[f'bare{b}']:>12.1f} t/s{r[f'sitegen{b}']:>8.1f} t/s{ratio:>8.0%}")
        ratio8 = r["sitegen8"] / r["bare8"]
        print(f"target: sitegen >= 85% of bare at batch 8: {'met' if ratio8 >= 0.85 else 'NOT met'} ({ratio8:.0%})")
        print(f"batch 1 vs batch 8: {gen['same']}/{gen['compared']} drafts identical")
        for label, run in zip(("cold", "warm"), ttft):
            print(
                f"sitegen draft ({label} weights-hash cache): first token {run['first_token']:.2f}s after start "
                f"(imports {run['import']:.2f}s), {run['written']} drafts in {run['total']:.2f}s, "
                f"{run['tokens']} new tokens in {run['gen_seconds']:.1f}s of generation (prefill included)"
            )
        print(f"benchmark ran {time.perf_counter() - started:.0f}s")
    finally:
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()

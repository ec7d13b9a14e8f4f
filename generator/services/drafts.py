"""GPT-2 drafting service: model resolution, one load, batched seeded generation, output hygiene.

torch, transformers and huggingface_hub are imported inside functions only: `sitegen --help`
and `sitegen build` import this module's callers without paying for them.

Reproducibility: every draft samples from its own `torch.Generator` seeded from the run seed
and its slug/section, so the random numbers a draft draws do not depend on which other drafts
share its batch. The logits themselves are computed in float32, where a batch of 8 (with left
padding) and a batch of 1 differ in the last bits; Gumbel-max sampling (see RowSampler) turns
that into a different token only when the two best candidates are within rounding error of
each other. `draft.batch_size: 1` removes even that; batch size and device are recorded in
every draft.

It runs a little over 600 lines because resolving, loading and sampling share one model
object and its failure modes; the hygiene of model output is the part that could leave next.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Protocol

from ..diagnostics import EnvironmentProblem
from ..models import public_model_name
from ..residue import DRAFT_TOKEN
from .cache import Cache, hash_key

SAFETENSORS_FILES = ("model.safetensors", "model.safetensors.index.json")
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# Files a hub download fetches: configs, tokenizer files and safetensors weights; never code.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "vocab*", "merges*"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")


# --- plain objects ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelInfo:
    """A resolved model: where its files are and what identifies its weights."""

    model: str
    """The id or path the user gave (drafts record `name`, never a path)."""
    folder: Path
    source: Literal["folder", "cache", "download"]
    revision: str
    weights: tuple[Path, ...]
    weights_sha256: str = ""

    @property
    def name(self) -> str:
        """What a draft records and a page shows: a hub id as given, a folder by its own name (a path would leak the author's machine)."""
        return public_model_name(self.model) or public_model_name(str(self.folder.resolve()))


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that shapes the sampled tokens besides the model and the prompt."""

    temperature: float = 0.8
    top_p: float = 0.95
    max_prompt_tokens: int = 768
    batch_size: int = 8
    time_limit: float = 120.0
    device: str = "auto"

    def record(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "do_sample": self.temperature > 0}


@dataclass(frozen=True)
class DraftRequest:
    """One draft to generate: the prompt text, its own seed and token budget."""

    key: str
    prompt: str
    seed: int
    max_new_tokens: int


@dataclass
class DraftOutput:
    """The raw continuation of one prompt (before hygiene) and how generation ended."""

    key: str
    text: str
    prompt_tokens: int = 0
    prompt_truncated: bool = False
    new_tokens: int = 0
    stopped: Literal["eos", "max_new_tokens", "time_limit"] = "eos"


@dataclass
class StepReport:
    """Passed to the progress callback after every decoding step of a batch."""

    tokens: int
    """Tokens produced in this step (rows still running)."""
    batch_rows: int


class DraftGenerator(Protocol):
    """What the drafting engine needs: model provenance and batched generation."""

    info: ModelInfo
    device: str
    dtype: str
    special_tokens: tuple[str, ...]

    def generate(
        self,
        requests: list[DraftRequest],
        on_step: Callable[[StepReport], None] | None = None,
        on_done: Callable[[DraftOutput], None] | None = None,
    ) -> list[DraftOutput]:
        """Outputs in request order; on_done sees each one as soon as its batch ends."""
        ...


# --- model resolution ---------------------------------------------------------------------


def hub_cache_dir() -> Path:
    """The Hugging Face cache, read from the environment at call time (tests and users set it late)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def is_offline() -> bool:
    """HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE say the hub must not be contacted."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(f.strip().upper() in ("1", "ON", "YES", "TRUE") for f in flags)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1 or not _REPO_ID.match(model)


def _not_found(model: str, where: Path | str) -> EnvironmentProblem:
    hint = (
        f"or run `sitegen draft` once with network access to download '{model}' into the Hugging Face cache "
        f"({hub_cache_dir()})"
        if not _looks_like_path(model)
        else "or set draft.model in sitegen.yaml to a model id such as gpt2"
    )
    return EnvironmentProblem(
        f"GPT-2 weights not found at {where}; point --model at a folder with config.json and "
        f"model.safetensors (saved with save_pretrained) {hint}"
    )


def _cached_snapshot(repo_id: str, allow_pickle: bool) -> Path | None:
    """A snapshot folder of repo_id already in the HF cache; never touches the network."""
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                repo_id, cache_dir=hub_cache_dir(), local_files_only=True, allow_patterns=_patterns(allow_pickle)
            )
        )
    except Exception:  # noqa: BLE001 — every flavour of "not in the cache" means the same here
        return None


def _patterns(allow_pickle: bool) -> list[str]:
    return HUB_PATTERNS + (["*.bin"] if allow_pickle else [])


def _download(repo_id: str, allow_pickle: bool) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, cache_dir=hub_cache_dir(), allow_patterns=_patterns(allow_pickle)))
    except Exception as exc:  # noqa: BLE001 — no network, unknown repo, gated repo: all end the same way
        err = _not_found(repo_id, hub_cache_dir() / f"models--{repo_id.replace('/', '--')}")
        err.message += f" (download failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        err.args = (err.message,)
        raise err from None


def collect_weights(folder: Path, model: str, allow_pickle: bool) -> tuple[Path, ...]:
    """The weight files of a model folder; pickle weights only when explicitly allowed."""
    if not (folder / "config.json").is_file():
        raise _not_found(model, folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        return _shards(folder, index)
    if (folder / "model.safetensors").is_file():
        return (folder / "model.safetensors",)
    pickles = [folder / n for n in PICKLE_FILES if (folder / n).is_file()]
    if pickles:
        if not allow_pickle:
            raise EnvironmentProblem(
                f"{folder}: only .safetensors weights are loaded, and this folder has {pickles[0].name} "
                "(a pickle, which can run code when loaded); convert it with save_pretrained(safe_serialization=True) "
                "or set draft.allow_pickle: true if you trust its source"
            )
        if pickles[0].name.endswith(".index.json"):
            return _shards(folder, pickles[0])
        return (pickles[0],)
    raise _not_found(model, folder)


def _shards(folder: Path, index: Path) -> tuple[Path, ...]:
    try:
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        raise EnvironmentProblem(f"{index}: unreadable weight index ({exc})") from None
    paths = []
    for name in names:
        p = (folder / name).resolve()
        if Path(name).name != name or not p.is_file():
            raise EnvironmentProblem(f"{index}: weight shard {name!r} is missing or outside the model folder")
        paths.append(folder / name)
    return tuple(paths)


def hash_weights(weights: Iterable[Path], cache: Cache | None = None) -> str:
    """sha256 of the weights (one file: its own digest), remembered by path, size and mtime."""
    digests = []
    for path in weights:
        st = path.stat()
        key = hash_key("weights-sha256", str(path.resolve()), str(st.st_size), str(st.st_mtime_ns))
        digest = cache.get_text(key) if cache is not None else None
        if digest is None or not re.fullmatch(r"[0-9a-f]{64}", digest):
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
            if cache is not None:
                cache.put_text(key, digest)
        digests.append((path.name, digest))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{n}  {d}\n" for n, d in digests).encode()).hexdigest()


def resolve_model(model: str, project: Path, *, allow_pickle: bool = False, cache: Cache | None = None) -> ModelInfo:
    """A local folder, else the HF cache (offline), else a download when online; never runs model code."""
    model = model.strip()
    if not model:
        raise EnvironmentProblem("draft.model is empty; set it to a model id such as gpt2 or a folder")
    local = Path(model).expanduser()
    if not local.is_absolute():
        local = project / local
    source: Literal["folder", "cache", "download"]
    if local.is_dir():
        folder, source, revision = local, "folder", "local"
    elif _looks_like_path(model):
        raise _not_found(model, local)
    else:
        snap = _cached_snapshot(model, allow_pickle)
        source = "cache"
        if snap is None or not (snap / "config.json").is_file():
            if is_offline():
                # HF_HUB_OFFLINE: say so and stop; no socket is opened.
                raise _not_found(model, hub_cache_dir() / f"models--{model.replace('/', '--')}")
            snap, source = _download(model, allow_pickle), "download"
        folder = snap
        revision = snap.name if _SNAPSHOT.match(snap.name) else ""
    weights = collect_weights(folder, model, allow_pickle)
    return ModelInfo(model, folder, source, revision, weights, hash_weights(weights, cache))


# --- generation ---------------------------------------------------------------------------


def derive_seed(seed: int, *parts: str) -> int:
    """A per-draft seed from the run seed and the draft's identity (stable across Python runs)."""
    digest = hashlib.sha256("\x00".join([str(seed), *parts]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


def resolve_device(device: str) -> str:
    """`auto` means CUDA when torch sees a GPU, else CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise EnvironmentProblem("--device cuda: torch sees no CUDA device here (use --device cpu or auto)")
    return device


def load_generator(info: ModelInfo, settings: GenerationSettings, *, allow_pickle: bool = False) -> "TransformersGenerator":
    """Load tokenizer and model once from the resolved folder (the same path for ids and folders)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    device = resolve_device(settings.device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(info.folder, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(
            info.folder,
            local_files_only=True,
            trust_remote_code=False,
            # None lets transformers fall back to .bin; only reachable when the user opted in.
            use_safetensors=None if allow_pickle else True,
            dtype=torch.float32 if device == "cpu" else torch.float16,
        )
    except (OSError, ValueError, KeyError, ImportError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "trust_remote_code" in str(exc):
            first = "this model needs code from its repository (trust_remote_code), which sitegen never runs"
        raise EnvironmentProblem(f"cannot load the model at {info.folder}: {first}") from None
    model.to(device)
    model.eval()
    return TransformersGenerator(info, tokenizer, model, settings, device)


class TransformersGenerator:
    """Batched generation with left padding, KV cache and one random stream per draft."""

    def __init__(self, info: ModelInfo, tokenizer: Any, model: Any, settings: GenerationSettings, device: str):
        self.info = info
        self.tokenizer = tokenizer
        self.model = model
        self.settings = settings
        self.device = device
        self.dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.n_positions = int(
            getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 1024)
        )
        self.special_tokens = tuple(sorted({str(t) for t in tokenizer.all_special_tokens if t}))

    def encode_prompt(self, prompt: str, max_new_tokens: int) -> tuple[list[int], bool]:
        """Token ids of a prompt; content can never become a special token; the end is kept."""
        ids = self.tokenizer(prompt, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        limit = max(1, min(self.settings.max_prompt_tokens, self.n_positions - max_new_tokens))
        if len(ids) > limit:
            return ids[-limit:], True
        return ids, False

    def generate(
        self,
        requests: list[DraftRequest],
        on_step: Callable[[StepReport], None] | None = None,
        on_done: Callable[[DraftOutput], None] | None = None,
    ) -> list[DraftOutput]:
        if not requests:
            return []
        budget_cap = self.n_positions - 1
        for r in requests:
            if r.max_new_tokens < 1 or r.max_new_tokens > budget_cap:
                raise EnvironmentProblem(
                    f"draft.max_new_tokens is {r.max_new_tokens}, but this model's context holds "
                    f"{self.n_positions} tokens: use 1 … {budget_cap}"
                )
        encoded = {r.key: self.encode_prompt(r.prompt, r.max_new_tokens) for r in requests}
        # Similar lengths together: less padding, and the order never depends on dict iteration.
        ordered = sorted(requests, key=lambda r: (len(encoded[r.key][0]), r.key))
        size = max(1, self.settings.batch_size)
        results: dict[str, DraftOutput] = {}
        for start in range(0, len(ordered), size):
            batch = ordered[start : start + size]
            for out in self._generate_batch(batch, [encoded[r.key] for r in batch], on_step):
                results[out.key] = out
                if on_done is not None:
                    on_done(out)
        return [results[r.key] for r in requests]

    def _generate_batch(
        self,
        batch: list[DraftRequest],
        encoded: list[tuple[list[int], bool]],
        on_step: Callable[[StepReport], None] | None,
    ) -> list[DraftOutput]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = max(len(ids) for ids, _ in encoded)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (ids, _) in enumerate(encoded):
            if ids:
                input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                mask[i, width - len(ids) :] = 1
        budgets = [r.max_new_tokens for r in batch]
        sampler = RowSampler([r.seed for r in batch], self.settings.temperature, self.settings.top_p)
        guard = BatchGuard(width, budgets, self.eos_ids, time.monotonic() + self.settings.time_limit, on_step)
        config = GenerationConfig(
            do_sample=False,  # sampling happens in RowSampler, per row, from each draft's own generator
            num_beams=1,
            max_new_tokens=max(budgets),
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
            use_cache=True,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=mask.to(self.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([guard]),
            )
        new = out[:, width:].tolist()
        results = []
        for i, req in enumerate(batch):
            row = new[i][: budgets[i]]
            stopped: Literal["eos", "max_new_tokens", "time_limit"]
            cut = next((k for k, t in enumerate(row) if t in self.eos_ids), None)
            if cut is not None:
                row, stopped = row[:cut], "eos"
            elif len(row) >= budgets[i]:
                stopped = "max_new_tokens"
            else:
                stopped = "time_limit"
            text = self.tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            results.append(DraftOutput(req.key, text, len(encoded[i][0]), encoded[i][1], len(row), stopped))
        return results


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-text ids: the model's generation config, else the tokenizer's eos (or [SEP] for BERT-style vocabularies)."""
    raw = getattr(model.generation_config, "eos_token_id", None)
    if raw is None:
        raw = getattr(model.config, "eos_token_id", None)
    if raw is None:
        raw = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
    ids = raw if isinstance(raw, list) else [raw]
    return [int(i) for i in ids if i is not None]


class RowSampler:
    """Temperature + nucleus sampling with one torch.Generator per row (a duck-typed LogitsProcessor).

    Sampling is Gumbel-max: each row draws one Gumbel value per vocabulary id and takes the
    argmax of logits/T + noise. The noise is indexed by token id, never by sorted position, so
    float32 rounding differences between batch shapes change a pick only when the two best
    candidates are within that rounding of each other (inverse-CDF sampling over a sorted list
    flips whenever two near-equal logits swap places). The returned scores are -inf except for
    the chosen token, so greedy decoding in `generate` picks it: the KV cache, padding and
    stopping logic stay transformers' own.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = []
        for seed in seeds:
            g = torch.Generator(device="cpu")
            g.manual_seed(seed)
            self.generators.append(g)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.temperature <= 0:
            return scores
        logits = scores.float() / self.temperature
        if self.top_p < 1.0:
            # float32 for the sort (the costly part); only membership of the nucleus comes out of it.
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (the best token always stays).
            drop_sorted = (probs.cumsum(dim=-1) - probs) >= self.top_p
            drop = torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)
            logits = logits.masked_fill(drop, float("-inf"))
        vocab = logits.shape[-1]
        uniform = torch.stack([torch.rand(vocab, generator=g, dtype=torch.float64) for g in self.generators])
        gumbel = -torch.log(-torch.log(uniform.clamp_min(1e-300)))
        tokens = (logits.double() + gumbel.to(logits.device)).argmax(dim=-1, keepdim=True)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, tokens, 0.0)


class BatchGuard:
    """A duck-typed StoppingCriteria: per-row token budgets, EOS, a deadline for the batch, progress reports."""

    def __init__(
        self,
        prompt_width: int,
        budgets: list[int],
        eos_ids: list[int],
        deadline: float,
        on_step: Callable[[StepReport], None] | None,
    ):
        self.prompt_width = prompt_width
        self.budgets = budgets
        self.eos_ids = set(eos_ids)
        self.deadline = deadline
        self.on_step = on_step
        self.done = [False] * len(budgets)
        self.timed_out = False

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        produced = input_ids.shape[1] - self.prompt_width
        last = input_ids[:, -1].tolist()
        running = 0
        for i, token in enumerate(last):
            if self.done[i]:
                continue
            running += 1
            if token in self.eos_ids or produced >= self.budgets[i]:
                self.done[i] = True
        if self.on_step is not None:
            self.on_step(StepReport(running, len(self.budgets)))
        if time.monotonic() > self.deadline and not all(self.done):
            self.timed_out = True
            return torch.ones(len(self.budgets), dtype=torch.bool, device=input_ids.device)
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


# --- output hygiene -----------------------------------------------------------------------

_EOS_STRINGS = ("<|endoftext|>",)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}]) +(?=[{_CJK}])")
_SENTENCE_END = re.compile(r"(?:[.!?…](?:[\"'”’)\]]*)(?=\s|$))|[。！？](?:[”’」』）]*)")


def _norm_line(line: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", line)).strip().casefold()


def clean_text(
    text: str,
    *,
    prompt: str = "",
    special_tokens: Iterable[str] = (),
    max_chars: int = 3000,
    eos_strings: Iterable[str] = _EOS_STRINGS,
) -> str:
    """Plain, bounded text from raw model output: EOS cut, token strings, echoes and repeats removed."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    for eos in eos_strings:
        if eos and eos in text:
            text = text.split(eos, 1)[0]
    for tok in sorted(set(special_tokens), key=len, reverse=True):
        if tok and (tok.startswith(("<", "[")) or len(tok) > 3):
            text = text.replace(tok, "")
    text = DRAFT_TOKEN.sub("", text)
    text = _CONTROL.sub("", text)
    text = _CJK_GAP.sub("", text)
    text = _strip_echo(text, prompt)
    text = _drop_repeats(text)
    if len(text) > max_chars:
        text = text[:max_chars]
    text = _cut_at_sentence(text)
    return text.strip()


def _strip_echo(text: str, prompt: str) -> str:
    """Remove a repeated prompt at the start and lines copied from the prompt."""
    if not prompt.strip():
        return text
    body = text.lstrip()
    stripped_prompt = prompt.strip()
    if stripped_prompt and body.startswith(stripped_prompt):
        body = body[len(stripped_prompt) :]
    prompt_lines = {_norm_line(ln) for ln in prompt.splitlines() if len(_norm_line(ln)) >= 12}
    return "\n".join(ln for ln in body.split("\n") if _norm_line(ln) not in prompt_lines)


def _drop_repeats(text: str) -> str:
    """GPT-2 loops: keep the first occurrence of every non-empty line, at most one blank line in a row."""
    seen: set[str] = set()
    out: list[str] = []
    for line in text.split("\n"):
        key = _norm_line(line)
        if not key:
            if out and out[-1] != "":
                out.append("")
            continue
        if key in seen:
            continue
        seen.add(key)
        out.append(line.rstrip())
    return "\n".join(out)


def _cut_at_sentence(text: str) -> str:
    """Drop a trailing unfinished sentence; text without any sentence end is kept as it is."""
    stripped = text.rstrip()
    ends = list(_SENTENCE_END.finditer(stripped))
    if not ends:
        return stripped
    last = ends[-1].end()
    if last >= len(stripped):
        return stripped
    return stripped[:last]


def record_versions() -> dict[str, str]:
    """Library versions that shape the numbers (recorded in each draft's generation block)."""
    import torch
    import transformers

    return {"transformers": transformers.__version__, "torch": torch.__version__}


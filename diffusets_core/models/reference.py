"""Loading the authors' released checkpoints (``unet_all.pth``, ``vae_model.pth``) into our models
(book/reference_implementation.md#released-files).

* :func:`load_reference_unet` -> :class:`~diffusets_core.models.unet.ConditionalUNet1D` in paper mode. The
  architecture (latent channels, kernel, levels, width, number of timesteps, text width) is read from the
  state dict, so the 1536-d (ada-002) release and the authors' 8192-d web-demo model both load; the text
  width is then ``model.cfg.text_dim``. ``cond_dim`` (3 patient values; 0 for the text-only "noc" variant)
  cannot be told apart from the text width in the state dict and is an argument.
* :func:`load_reference_vae` -> :class:`ReferenceVAE` (a paper-mode :class:`~diffusets_core.models.vae.VAE`,
  scale 0.18215). Remember the reference's signal layout: ``vae.encode(x_BLC, layout="BLC")`` /
  ``vae.decode(z, layout="BLC")`` take/return (B, 1024, 12); our default layout is (B, 12, 1024).
* Lead order. The released models were trained on MIMIC-IV-ECG's WFDB files read as stored, so the released
  VAE's network reads and writes its 12 channels in the files' order, :data:`REFERENCE_LEAD_ORDER` = I, II,
  III, aVR, **aVF, aVL**, V1..V6 (the authors' code never reorders leads:
  book/reference_implementation.md#lead-order). Everything else in the package uses
  :data:`~diffusets_core.data.leads.CANONICAL_LEADS` (aVL before aVF). :class:`ReferenceVAE` converts at its
  boundary, in one place: ``encode``/``moments``/``loss`` take canonical signals and feed the encoder the
  native order; ``decode`` returns canonical signals. Its ``encoder``/``decoder`` submodules, called
  directly, are the raw networks and work in native order. The U-Net sees only latents and has no lead order.
* :func:`check_embedder_compat` fails loudly when a text embedder's width differs from the U-Net's.

Checkpoints are read with ``torch.load(weights_only=True)`` (no arbitrary pickles) onto the CPU. Every
failure raises :class:`CheckpointError` with a readable message: unreadable (corrupted / truncated / not a
checkpoint) files, missing or unexpected keys, shape mismatches. Loading is strict.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn

from ..checkpoint import CheckpointError  # one error type for every checkpoint problem
from ..data.leads import CANONICAL_LEADS, MIMIC_FILE_LEADS, reorder_leads
from .unet import ConditionalUNet1D, PaperUNetConfig
from .vae import VAE, VAEConfig

__all__ = [
    "CheckpointError",
    "EmbedderMismatchError",
    "REFERENCE_LEAD_ORDER",
    "ReferenceVAE",
    "read_checkpoint",
    "load_reference_unet",
    "load_reference_vae",
    "check_embedder_compat",
    "check_state_dict",
    "patient_from_condition",
]

PathOrStateDict = Union[str, os.PathLike, Mapping[str, Any]]

#: The channel order of the released VAE's network (input of its encoder, output of its decoder): the order of
#: MIMIC-IV-ECG's WFDB files, on which the released models were trained without reordering (aVF before aVL).
REFERENCE_LEAD_ORDER: tuple[str, ...] = MIMIC_FILE_LEADS


class EmbedderMismatchError(ValueError):
    """The text embedder's width differs from the U-Net's conditioning width."""


# ------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with readable errors."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise CheckpointError(f"checkpoint path is a directory, expected a .pth/.pt file: {p}")
    size = p.stat().st_size
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = str(e)
        m = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        detail = m.group(1).strip() if m else (text.strip().splitlines() or [type(e).__name__])[0]
        if "Unsupported global" in text:
            raise CheckpointError(
                f"checkpoint {p} contains pickled Python objects that safe loading (weights_only=True) "
                f"refuses; re-save it as a plain state dict of tensors ({detail[:200]})"
            ) from None
        raise CheckpointError(
            f"could not read checkpoint {p} ({size} bytes): the file is corrupted, truncated or not a "
            f"PyTorch checkpoint (UnpicklingError: {detail[:200]})"
        ) from None
    except (RuntimeError, EOFError, ValueError, OSError, KeyError, IndexError, AttributeError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise CheckpointError(
            f"could not read checkpoint {p} ({size} bytes): the file is corrupted, truncated or not a "
            f"PyTorch checkpoint ({type(e).__name__}: {first[:200]})"
        ) from None


def _as_state_dict(obj: Any, what: str) -> dict[str, torch.Tensor]:
    """Accept a flat state dict, or one wrapped as {'state_dict': ...}/{'model': ...}; strip 'module.'."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{what}: expected a state dict (mapping of names to tensors), got {type(obj).__name__}")
    for wrapper in ("state_dict", "model"):
        inner = obj.get(wrapper)
        if isinstance(inner, Mapping) and not any(torch.is_tensor(v) for v in obj.values()):
            obj = inner
            break
    sd = dict(obj)
    bad = [k for k, v in sd.items() if not torch.is_tensor(v)]
    if bad:
        raise CheckpointError(f"{what}: entries that are not tensors: {bad[:5]}{' ...' if len(bad) > 5 else ''}")
    if sd and all(k.startswith("module.") for k in sd):  # saved from DataParallel / DDP
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_source(src: PathOrStateDict, what: str) -> Any:
    if isinstance(src, (str, os.PathLike)):
        return read_checkpoint(src)
    return src


def _fmt(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str = "state dict") -> None:
    """Raise :class:`CheckpointError` naming missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_fmt(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_fmt(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_fmt(shapes, 6)}")
    if problems:
        raise CheckpointError(f"{what} does not fit {type(model).__name__}: " + "; ".join(problems))


def _strict_load(model: nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    check_state_dict(model, state_dict, what)
    model.load_state_dict(state_dict, strict=True)


# ------------------------------------------------------------------------------------------------
_UNET_PROBE = "downsampling_blocks.0.block.pre_shortcut_convs.weight"


def infer_unet_config(state_dict: Mapping[str, torch.Tensor], cond_dim: int = 3, **overrides: Any) -> PaperUNetConfig:
    """Paper-mode :class:`~.unet.PaperUNetConfig` whose shapes match a reference U-Net state dict."""
    needed = [
        _UNET_PROBE,
        "downsampling_blocks.0.block.res_conv.weight",
        "bottelneck.time_emb.embeddings",
        "bottelneck.cross_attention.value_combiner.weight",
    ]
    absent = [k for k in needed if k not in state_dict]
    if absent:
        raise CheckpointError(
            "state dict does not look like a DiffuSETS U-Net (ECGConditional / unet_all.pth): "
            f"missing {_fmt(absent)}; it has {len(state_dict)} keys, e.g. {_fmt(list(state_dict)[:5], 5)}"
        )
    pre = state_dict[_UNET_PROBE]
    in_channels, kernel = int(pre.shape[1]), int(pre.shape[2])
    n_down = len({int(m.group(1)) for k in state_dict if (m := re.match(r"downsampling_blocks\.(\d+)\.", k))})
    width = int(state_dict["downsampling_blocks.0.block.res_conv.weight"].shape[0]) // (2 * in_channels)
    table = state_dict["bottelneck.time_emb.embeddings"]
    cond_in = int(state_dict["bottelneck.cross_attention.value_combiner.weight"].shape[1])
    text_dim = cond_in - cond_dim
    if text_dim < 1:
        raise CheckpointError(f"value_combiner takes {cond_in} inputs, fewer than cond_dim={cond_dim}")
    kw: dict[str, Any] = dict(
        in_channels=in_channels,
        levels=n_down + 1,
        kernel_size=kernel,
        text_dim=text_dim,
        cond_dim=cond_dim,
        time_steps=int(table.shape[0]),
        time_dim=int(table.shape[1]),
        width_mult=max(1, width),
        keep_dead_params=any(".block.down." in k for k in state_dict),
        cond_dropout=0.1 if "null_text" in state_dict else 0.0,  # nominal; only decides whether null params exist
    )
    kw.update(overrides)
    return PaperUNetConfig.paper(**kw)


def load_reference_unet(
    path_or_state_dict: PathOrStateDict, *, cond_dim: int = 3, cross_attn_impl: str = "bias", **overrides: Any
) -> ConditionalUNet1D:
    """Build a paper-mode U-Net shaped like the checkpoint and load it strictly; returns it in eval mode.

    ``cond_dim``: number of patient values concatenated after the text (3 = sex, age, HR; 0 for the
    text-only variant). The text width is read from the state dict (``model.cfg.text_dim``: 1536 for the
    released ``unet_all.pth``, 8192 for the authors' web-demo model; book/reference_implementation.md#text-embedders);
    check it against your embedder with :func:`check_embedder_compat`.
    """
    what = str(path_or_state_dict) if isinstance(path_or_state_dict, (str, os.PathLike)) else "U-Net state dict"
    sd = _as_state_dict(_load_source(path_or_state_dict, what), what)
    cfg = infer_unet_config(sd, cond_dim=cond_dim, cross_attn_impl=cross_attn_impl, **overrides)
    model = ConditionalUNet1D(cfg)
    _strict_load(model, sd, what)
    return model.eval()


class ReferenceVAE(VAE):
    """The authors' released VAE: a paper-mode :class:`VAE` whose network works in :attr:`native_leads` order
    (:data:`REFERENCE_LEAD_ORDER`, MIMIC-IV-ECG's file order) behind the package's canonical API.

    ``encode``/``moments``/``loss``/``forward`` take signals (B, 12, L) in
    :data:`~diffusets_core.data.leads.CANONICAL_LEADS` order (or (B, L, 12) with ``layout="BLC"``) and reorder
    them to the native order before the encoder; ``decode`` reorders the decoder's native output to canonical
    order. The state dict is the plain VAE's (the released file loads unchanged).

    Raises:
        ValueError: a config with ``derived_leads`` or ``in_channels`` other than 12 (the released network reads
            and writes all 12 leads).
    """

    #: channel order of the wrapped network's input and output
    native_leads: tuple[str, ...] = REFERENCE_LEAD_ORDER

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__(cfg if cfg is not None else VAEConfig.paper())
        if self.cfg.derived_leads or self.cfg.in_channels != len(self.native_leads):
            raise ValueError(
                f"ReferenceVAE: the released VAE reads and writes the {len(self.native_leads)} leads "
                f"{', '.join(self.native_leads)}; got in_channels={self.cfg.in_channels}, "
                f"derived_leads={self.cfg.derived_leads}"
            )

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        # canonical (B, 12, L) -> the native order the released encoder was trained on
        return reorder_leads(x, CANONICAL_LEADS, self.native_leads, axis=-2)

    def _outputs(self, y: torch.Tensor) -> torch.Tensor:
        # the released decoder's native (B, 12, L) -> canonical, so every caller gets leads by their names
        return reorder_leads(y, self.native_leads, CANONICAL_LEADS, axis=-2)


def load_reference_vae(path_or_state_dict: PathOrStateDict, **overrides: Any) -> ReferenceVAE:
    """Load ``vae_model.pth`` (``{'encoder': sd, 'decoder': sd}``; a flat ``encoder.*``/``decoder.*`` dict is
    accepted too) into a paper-mode :class:`ReferenceVAE` (scale 0.18215), strictly; returns it in eval mode.
    Channel widths and latent channels are read from the state dict. Its ``encode``/``decode`` take and return
    canonical lead order; the network inside works in :data:`REFERENCE_LEAD_ORDER` (see :class:`ReferenceVAE`)."""
    what = str(path_or_state_dict) if isinstance(path_or_state_dict, (str, os.PathLike)) else "VAE state dict"
    obj = _load_source(path_or_state_dict, what)
    if isinstance(obj, Mapping) and "encoder" in obj and "decoder" in obj:
        enc = _as_state_dict(obj["encoder"], f"{what} ['encoder']")
        dec = _as_state_dict(obj["decoder"], f"{what} ['decoder']")
        extra = [k for k in obj if k not in ("encoder", "decoder")]
        if extra:
            raise CheckpointError(f"{what}: unexpected top-level entries {extra} (expected 'encoder' and 'decoder')")
    elif isinstance(obj, Mapping) and obj and all(str(k).startswith(("encoder.", "decoder.")) for k in obj):
        flat = _as_state_dict(obj, what)
        enc = {k[len("encoder.") :]: v for k, v in flat.items() if k.startswith("encoder.")}
        dec = {k[len("decoder.") :]: v for k, v in flat.items() if k.startswith("decoder.")}
    else:
        keys = list(obj)[:5] if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(
            f"{what}: expected the released VAE layout {{'encoder': state dict, 'decoder': state dict}}, got {keys}"
        )
    kw: dict[str, Any] = {}
    try:
        c0 = int(enc["0.weight"].shape[0])
        kw["in_channels"] = int(enc["0.weight"].shape[1])
        kw["latent_channels"] = int(dec["0.weight"].shape[0])
        c1 = int(enc["4.conv_1.weight"].shape[0])
        c2 = int(enc["7.conv_1.weight"].shape[0])
        kw["channels"] = (c0, c1, c2)
    except KeyError:
        pass  # fall back to paper widths; the strict check below names what is missing
    kw.update(overrides)
    cfg = VAEConfig.paper(**kw)
    try:
        vae = ReferenceVAE(cfg)
    except ValueError as e:  # e.g. an encoder reading 8 channels: not the released 12-lead network
        raise CheckpointError(f"{what}: {e}") from None
    _strict_load(vae.encoder, enc, f"{what} ['encoder']")
    _strict_load(vae.decoder, dec, f"{what} ['decoder']")
    return vae.eval()


# ------------------------------------------------------------------------------------------------
def _text_dim_of(unet: ConditionalUNet1D | PaperUNetConfig | int) -> int:
    if isinstance(unet, int):
        return unet
    cfg = unet.cfg if isinstance(unet, ConditionalUNet1D) else unet
    return int(cfg.text_dim)


def _embedder_dim(embedder: Any) -> int | None:
    if isinstance(embedder, bool):
        raise TypeError("embedder_dim must be an int or an embedder")
    if isinstance(embedder, int):
        return embedder
    if isinstance(embedder, Mapping):
        d = embedder.get("dim")
        return None if d is None else int(d)
    for attr in ("dim", "dimension", "embedding_dim"):
        if hasattr(embedder, attr):
            d = getattr(embedder, attr)
            return None if d is None else int(d)
    if hasattr(embedder, "identity"):
        return _embedder_dim(embedder.identity)
    raise TypeError(f"cannot tell the output width of {embedder!r}; pass an int")


def check_embedder_compat(unet: ConditionalUNet1D | PaperUNetConfig | int, embedder_dim: Any) -> bool:
    """Raise :class:`EmbedderMismatchError` unless the embedder's width equals the U-Net's text width.

    ``embedder_dim`` is an int, an embedder (anything with ``.dim``) or an identity mapping with ``'dim'``.
    Returns True when checked; when the embedder's width is unknown (``None``, e.g. a remote model not yet
    called) it warns and returns False.
    """
    want = _text_dim_of(unet)
    got = _embedder_dim(embedder_dim)
    if got is None:
        warnings.warn(f"embedder width unknown; cannot check it against the U-Net's text_dim={want}", stacklevel=2)
        return False
    if got != want:
        hint = {
            1536: "the paper's released unet_all.pth uses OpenAI text-embedding-ada-002 (1536-d)",
            8192: "the authors' web-demo checkpoint uses an 8192-d 'E-72B' embedder",
            384: "our default local embedder (all-MiniLM-L6-v2) is 384-d",
        }.get(want, "")
        raise EmbedderMismatchError(
            f"text embedder produces {got}-d vectors but the U-Net was built/trained for {want}-d text "
            f"embeddings{' (' + hint + ')' if hint else ''}. Use the embedder the checkpoint was trained with, "
            f"or train a U-Net with text_dim={got}."
        )
    return True


def patient_from_condition(condition: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """The reference's condition dict (values (B, 1, 1), insertion order = sex, age, HR) -> (B, 3)."""
    vals = [torch.as_tensor(v).reshape(-1, 1) for v in condition.values()]
    return torch.cat(vals, dim=1)

"""The synthetic world's CLIP: open_clip's own `CLIP` class with a small config, trained contrastively on captions.

It sees green faces (the unseen attribute), so its text space knows "green zombie face" although the DDPM never
rendered one. Captions are sometimes wrapped in one of the 79 ImageNet prompt templates, because the Asyrp loss
(`models.DirectionalClipLoss`) averages its text direction over exactly those templates.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 3},
}
# open_clip's bundled BPE (offline), cut to the model's context: the longest caption in a prompt template is ~26
# tokens, and 32 instead of 77 positions makes the text tower 2.4× cheaper
TOKENIZER_NAME = "ViT-B-16"


@dataclass(frozen=True)
class ClipTrainConfig:
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.05
    template_probability: float = 0.5
    seed: int = 0
    # Half-width of a uniform per-image shift of the skin along the colour axis that neither tan nor green moves
    # (`skin_nuisance_axis`), with the captions unchanged; 0 trains on the renders as they are.
    skin_chroma_jitter: float = 0.0


def build_clip(config: dict[str, Any] | None = None):
    import open_clip

    return open_clip.model.CLIP(**(config or CLIP_CONFIG))


def initial_clip(seed: int, config: dict[str, Any] | None = None):
    """The CLIP as `train_clip` starts it: the same seed gives the same initial weights."""
    torch.manual_seed(seed)
    return build_clip(config)


# Storage of the text tower's token embedding. It holds a row for each of BPE's 49,408 tokens, yet the captions use
# a few hundred; the other rows get no gradient and no weight decay (see `train_clip`), so they stay at their random
# initialisation and mean nothing. Storing only the rows that training changed, with their ids, shrinks the fp16
# CLIP from 7.9 MB to under 2 MB. Loading puts zeros in the rows left out and refuses text that would read them.
TOKEN_EMBEDDING = "token_embedding.weight"
TOKEN_ROWS = "token_embedding.rows"
PAD_TOKEN = 0  # open_clip's tokenizer pads with id 0 after the end token; its row is read for every caption


def trained_token_rows(state: dict[str, torch.Tensor], seed: int, config: dict[str, Any] | None = None) -> torch.Tensor:
    """Ids of the token-embedding rows that differ from the seeded initialisation, and the padding row."""
    initial = initial_clip(seed, config).token_embedding.weight.detach()
    changed = (state[TOKEN_EMBEDDING] != initial).any(dim=1)
    changed[PAD_TOKEN] = True
    return changed.nonzero().flatten()


def keep_token_rows(state: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    """`state` with only the token-embedding rows `rows`, and their ids under `TOKEN_ROWS`."""
    kept = dict(state)
    kept[TOKEN_EMBEDDING] = state[TOKEN_EMBEDDING][rows].clone()
    kept[TOKEN_ROWS] = rows.to(torch.int64)
    return kept


def expand_token_rows(tensors: dict[str, torch.Tensor], vocab_size: int) -> tuple[dict[str, torch.Tensor],
                                                                                   torch.Tensor | None]:
    """(a full state dict, the ids of the stored rows) from a file made by `keep_token_rows`; the ids are None for
    a file that stores every row."""
    if TOKEN_ROWS not in tensors:
        return tensors, None
    full = dict(tensors)
    rows = full.pop(TOKEN_ROWS)
    stored = full[TOKEN_EMBEDDING]
    if rows.ndim != 1 or len(rows) != len(stored) or int(rows.max()) >= vocab_size or int(rows.min()) < 0:
        raise ValueError(f"{TOKEN_ROWS} does not index {len(stored)} rows of a {vocab_size}-token vocabulary")
    weight = torch.zeros(vocab_size, stored.shape[1], dtype=stored.dtype)
    weight[rows] = stored
    full[TOKEN_EMBEDDING] = weight
    return full, rows


def tokenizer():
    import open_clip

    return open_clip.get_tokenizer(TOKENIZER_NAME, context_length=CLIP_CONFIG["text_cfg"]["context_length"])


def clip_pixels(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 N×3×64×64 -> CLIP input: [0, 1], OpenAI normalisation (the same as the S_dir back-end at 64²)."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = images_uint8.float() / 255.0
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _lr_at(step: int, cfg: ClipTrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)))


def train_clip(images: torch.Tensor, factors: list, cfg: ClipTrainConfig, *, skin: torch.Tensor | None = None,
               log_every: int = 25):
    """Contrastive training on (render, fresh random caption) pairs; returns (model, loss history).

    `skin` (bool N×H×W, the renders' skin and nose pixels) is needed when `cfg.skin_chroma_jitter` > 0."""
    from benchmark.synthetic.captions import caption
    from benchmark.synthetic.clip_data import jitter_skin_chroma
    from models.clip_loss import IMAGENET_TEMPLATES

    model = initial_clip(cfg.seed).train()
    rng = np.random.default_rng([cfg.seed, 5])
    g = torch.Generator().manual_seed(cfg.seed)
    tok = tokenizer()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=cfg.lr)
    if cfg.skin_chroma_jitter > 0 and skin is None:
        raise ValueError("skin_chroma_jitter needs the renders' skin masks")
    # with the jitter every batch is normalised after its shift, so the whole pool is not normalised up front
    pixels = None if cfg.skin_chroma_jitter > 0 else clip_pixels(images)
    jitter = torch.Generator().manual_seed(cfg.seed + 1)
    history, start = [], time.time()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(factors), (cfg.batch_size,), generator=g)
        texts = []
        for i in idx.tolist():
            text = caption(factors[i], rng)
            if rng.random() < cfg.template_probability:
                text = IMAGENET_TEMPLATES[rng.integers(len(IMAGENET_TEMPLATES))].format(text)
            texts.append(text)
        if pixels is None:
            batch = clip_pixels(jitter_skin_chroma(images[idx], skin[idx], cfg.skin_chroma_jitter, jitter))
        else:
            batch = pixels[idx]
        image_features = F.normalize(model.encode_image(batch), dim=-1)
        text_features = F.normalize(model.encode_text(tok(texts)), dim=-1)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        # captions of different faces can coincide ("smiling face"); soft targets count every identical text
        same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
        target = same / same.sum(1, keepdim=True)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        history.append(float(loss.detach()))
        if (step + 1) % log_every == 0:
            print(f"clip step {step + 1}/{cfg.steps} loss {sum(history[-log_every:]) / log_every:.4f} "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    return model.eval(), history


@torch.no_grad()
def directional_cosines(model, pairs: dict[str, tuple[torch.Tensor, torch.Tensor]], prompts: dict[str, str],
                        source: str = "face") -> dict[str, float]:
    """Mean over pairs of cos(n(E_I(b)) − n(E_I(a)), n(E_T(target)) − n(E_T(source))) per attribute (raw prompts)."""
    tok = tokenizer()
    out = {}
    for name, (a, b) in pairs.items():
        t = F.normalize(model.encode_text(tok([source, prompts[name]])), dim=-1)
        dt = t[1] - t[0]
        ea = F.normalize(model.encode_image(clip_pixels(a)), dim=-1)
        eb = F.normalize(model.encode_image(clip_pixels(b)), dim=-1)
        out[name] = float(F.cosine_similarity(eb - ea, dt[None], dim=-1).mean())
    return out


def config_dict(cfg: ClipTrainConfig) -> dict:
    return asdict(cfg)

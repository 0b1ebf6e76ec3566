"""OpenAI CLIP in OpenAI's release format: a TorchScript archive of the `CLIP` model, weights partly in fp16.

What the release holds, and so what a forgery must hold (read in open_clip 3.3.0 `openai.load_openai_model` and
`model.build_model_from_openai_state_dict`, which follow openai/CLIP's `clip.load` / `build_model`):
- a zip written by `torch.jit.save` (a `code/` folder; `torch.load(weights_only=True)` refuses it);
- `state_dict()` keys of OpenAI's CLIP (open_clip's CLIP uses the same names): `visual.conv1.weight`,
  `visual.positional_embedding`, `visual.proj`, `visual.transformer.resblocks.N.attn.in_proj_weight`, ...,
  `token_embedding.weight`, `positional_embedding`, `ln_final.*`, `text_projection`, `logit_scale`; the model
  shape is read back from these shapes alone, and the state dict is loaded strictly (so no `attn_mask` entry:
  OpenAI keeps the causal mask as a plain attribute);
- the 0-dim tensors `input_resolution`, `context_length`, `vocab_size` (`clip.load(jit=True)` calls
  `model.input_resolution.item()`; both loaders pop them before building);
- fp16 for convolutions, linear and attention weights and the two projections, fp32 for LayerNorms and
  embeddings (OpenAI's `convert_weights`; open_clip's `convert_weights_to_fp16` is the same rule). The sizes this
  gives (ViT-L/14: 932 MB) match the published files' (about 890 MiB) to within the archive's code.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from benchmark.core.atomic import atomic_path
from benchmark.rehearsal.fill import fill_module_, meta_build

#: OpenAI's file name -> open_clip model name (the architecture; open_clip's configs equal OpenAI's).
OPENAI_CLIP_ARCHS = {"ViT-B-32.pt": "ViT-B-32", "ViT-B-16.pt": "ViT-B-16", "ViT-L-14.pt": "ViT-L-14"}


def openai_clip_module(config: dict, seed: int) -> torch.nn.Module:
    """An OpenAI-architecture CLIP (QuickGELU, OpenAI's fp16 rule) with seeded random weights, ready to script."""
    from open_clip.model import CLIP, convert_weights_to_fp16

    model = meta_build(CLIP, **config, quick_gelu=True, cast_dtype=torch.float16)
    fill_module_(model, seed)
    with torch.no_grad():
        model.logit_scale.fill_(float(torch.log(torch.tensor(1 / 0.07))))
    context = int(model.positional_embedding.shape[0])
    mask = torch.full((context, context), float("-inf")).triu_(1)
    del model._buffers["attn_mask"]  # open_clip's buffer -> OpenAI's plain attribute, so it is no state-dict entry
    model.attn_mask = mask
    image_size = model.visual.image_size
    del model.context_length, model.vocab_size  # python ints in open_clip; 0-dim tensors in OpenAI's archives
    model.register_buffer("input_resolution", torch.tensor(int(image_size[0])))
    model.register_buffer("context_length", torch.tensor(context))
    model.register_buffer("vocab_size", torch.tensor(int(model.token_embedding.weight.shape[0])))
    convert_weights_to_fp16(model)
    return model.eval()


def write_openai_clip_archive(path: Path, config: dict, seed: int) -> Path:
    """Script the forged CLIP and `torch.jit.save` it to `path` (atomically)."""
    module = openai_clip_module(config, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, but it is the format
        scripted = torch.jit.script(module)
    with atomic_path(path) as tmp:
        scripted.save(str(tmp))
    return path


def forge_openai_clip(path: Path, seed: int, file_name: str | None = None) -> Path:
    """The full-size forgery of one of OpenAI's CLIP releases (by its file name, e.g. ViT-B-16.pt)."""
    import open_clip

    arch = OPENAI_CLIP_ARCHS[file_name or path.name]
    return write_openai_clip_archive(path, open_clip.get_model_config(arch), seed)

"""The directional CLIP loss against a hand computation on a tiny random open_clip model."""

import torch
import torch.nn.functional as F
from models_helpers import one_thread, tiny_clip  # noqa: F401

import models as M


def test_templates_are_stylegan_nadas_79():
    t = M.IMAGENET_TEMPLATES
    assert len(t) == 79 == len(set(t))
    assert all("{}" in s for s in t)
    assert t[0] == "a bad photo of a {}." and t[-1] == "a tattoo of the {}."
    assert "a photo of many {}." not in t  # the one CLIP ImageNet prompt the authors' list leaves out


def _hand_loss(clip, tokenizer, source, edited, src_text, trg_text):
    """Resize the short side to 32 (bicubic, no antialias), centre-crop, normalise; then the NADA direction."""
    mean = torch.tensor(M.clip_loss.OPENAI_CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(M.clip_loss.OPENAI_CLIP_STD).view(1, 3, 1, 1)

    def prep(x):
        x = (x + 1) / 2
        h, w = x.shape[-2:]
        size = (32, int(32 * w / h)) if h <= w else (int(32 * h / w), 32)
        x = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        top, left = round((x.shape[-2] - 32) / 2), round((x.shape[-1] - 32) / 2)
        return (x[..., top:top + 32, left:left + 32] - mean) / std

    def image_features(x):
        f = clip.encode_image(prep(x))
        return f / f.norm(dim=-1, keepdim=True)

    def text_features(text):
        f = clip.encode_text(tokenizer([s.format(text) for s in M.IMAGENET_TEMPLATES]))
        return f / f.norm(dim=-1, keepdim=True)

    direction = (text_features(trg_text) - text_features(src_text)).mean(0, keepdim=True)
    direction = direction / direction.norm()
    d = image_features(edited) - image_features(source)
    d = d / (d.norm(dim=-1, keepdim=True) + 1e-7)
    cos = (d * direction).sum(-1) / (d.norm(dim=-1) * direction.norm())
    return -torch.log((2 - (1 - cos)) / 2)


def test_loss_matches_hand_computation_on_non_square_images():
    clip, tokenizer = tiny_clip()
    loss = M.DirectionalClipLoss(clip, tokenizer, "face", "smiling face")
    g = torch.Generator().manual_seed(0)
    source, edited = (torch.rand(3, 3, 48, 64, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        ours = loss(edited, loss.encode_images(source))
        hand = _hand_loss(clip, tokenizer, source, edited, "face", "smiling face")
    assert ours.shape == (3,)
    assert torch.allclose(ours, hand, atol=1e-5)
    raw = clip.encode_text(tokenizer(["face", "smiling face"]))
    assert abs(loss.text_cosine - float(F.cosine_similarity(raw[:1], raw[1:]))) < 1e-6


def test_each_image_uses_its_own_source_and_gradients_reach_the_pixels():
    clip, tokenizer = tiny_clip()
    loss = M.DirectionalClipLoss(clip, tokenizer, "face", "sad face")
    g = torch.Generator().manual_seed(1)
    source, edited = (torch.rand(4, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        batch = loss(edited, loss.encode_images(source))
        single = torch.cat([loss(edited[i:i + 1], loss.encode_images(source[i:i + 1])) for i in range(4)])
        swapped = loss(edited, loss.encode_images(source.flip(0)))
    assert torch.allclose(batch, single, atol=1e-6)
    assert not torch.allclose(batch, swapped, atol=1e-3)
    edited.requires_grad_(True)
    loss(edited, loss.encode_images(source)).sum().backward()
    assert edited.grad is not None and edited.grad.abs().sum() > 0
    assert all(p.grad is None for p in clip.parameters())  # CLIP stays frozen

"""The Asyrp core on diffusers: h-space UNet access, DDIM inversion, the asymmetric reverse process, f_t networks,
the batched trainer, t_edit/t_boost selection and the base-model loaders. API documentation: docs/models.md.

Stable names (outside tools rely on them): `timestep_grid`, `load_official_ft`, `select_t_edit`, `select_t_boost`, `HSpaceUNet`,
`from_ddpm_checkpoint`.
"""

from models.adm import ADM_ARCHS, adm_unet_config, from_adm_checkpoint
from models.batched_edit import BatchedGenerations, EditJob, generate_batched
from models.batching import auto_batch_size, batch_size_for_memory, unet_forward_batch_size
from models.checkpoints import (
    CELEBAHQ_DDPM_ARCH,
    DDPM_CELEBAHQ,
    SDEDIT_CELEBAHQ_ENV,
    SDEDIT_CELEBAHQ_SHA256,
    SDEDIT_CELEBAHQ_URL,
    HubSnapshot,
    celebahq_alphas_cumprod,
    ddpm_unet_config,
    from_ddpm_checkpoint,
    load_ddpm_celebahq,
)
from models.clip_loss import IMAGENET_TEMPLATES, DirectionalClipLoss
from models.codec import Codec, KLCodec, PixelCodec, VQCodec
from models.ddim import ddim_step, predict_x0
from models.diffusion_model import DiffusionModel
from models.ermongroup import ERMONGROUP_CONFIGS, ErmongroupConfig, load_ermongroup_ddpm, load_sdedit_celebahq
from models.fast_path import FastPath
from models.ft import (
    FT_REGISTRY,
    OFFICIAL_FT_SHA256,
    DeltaBlock,
    GlobalDelta,
    ResDeltaBlock,
    build_ft,
    load_official_ft,
)
from models.ft_batch import FT_BATCHING, BatchedFt
from models.ft_transformer import TRANSFORMER_VARIANTS, TokenTransformer, TransformerFt
from models.hspace import MID_LAYER, HSpace, HSpaceUNet, hspace_layers
from models.ldm import (
    TINY_KL_LDM_CONFIG,
    TINY_VQ_LDM_CONFIG,
    latent_diffusion_model,
    load_latent_diffusion,
    random_latent_diffusion_model,
)
from models.multi_trainer import AttributeRun, train_attributes
from models.noise_source import CLIP_SOURCES, NoiseSource, clip_source_images, noise_latents, noise_source
from models.random_models import (
    TINY_CLIP_CONFIG,
    TINY_UNET_CONFIG,
    random_diffusion_model,
    random_open_clip,
    random_unet,
)
from models.sampling import (
    EditSchedule,
    Generation,
    Inversion,
    ReferenceTrajectory,
    generate,
    invert,
    official_multi_attribute_coefficients,
    plain_reverse,
)
from models.schedule import (
    alphas_cumprod_from_scheduler_config,
    inversion_steps,
    linear_alphas_cumprod,
    reverse_steps,
    timestep_grid,
    training_steps,
    training_timesteps,
)
from models.t_select import (
    LpipsCurves,
    compute_lpips_curves,
    lpips_alex_distance,
    read_lpips_curve,
    select_t_boost,
    select_t_edit,
)
from models.trainer import LossHistory, StepRecord, TrainConfig, TrainResult, evaluate_losses, train_ft

__all__ = [
    "CELEBAHQ_DDPM_ARCH", "DDPM_CELEBAHQ", "FT_REGISTRY", "IMAGENET_TEMPLATES", "OFFICIAL_FT_SHA256",
    "SDEDIT_CELEBAHQ_ENV", "SDEDIT_CELEBAHQ_SHA256", "SDEDIT_CELEBAHQ_URL", "TINY_CLIP_CONFIG", "TINY_KL_LDM_CONFIG",
    "TINY_UNET_CONFIG", "TINY_VQ_LDM_CONFIG", "KLCodec", "VQCodec", "alphas_cumprod_from_scheduler_config",
    "latent_diffusion_model", "load_latent_diffusion", "random_latent_diffusion_model",
    "TRANSFORMER_VARIANTS", "CLIP_SOURCES", "MID_LAYER", "NoiseSource", "hspace_layers", "noise_latents",
    "noise_source", "clip_source_images", "ERMONGROUP_CONFIGS", "ErmongroupConfig",
    "load_ermongroup_ddpm", "ADM_ARCHS", "ResDeltaBlock", "adm_unet_config", "from_adm_checkpoint",
    "FT_BATCHING", "AttributeRun", "BatchedFt", "BatchedGenerations", "EditJob", "FastPath",
    "auto_batch_size", "batch_size_for_memory", "generate_batched", "train_attributes", "unet_forward_batch_size",
    "Codec", "DeltaBlock", "DiffusionModel", "DirectionalClipLoss", "EditSchedule", "Generation", "GlobalDelta",
    "HSpace", "HSpaceUNet", "HubSnapshot", "Inversion", "LossHistory", "LpipsCurves", "PixelCodec",
    "ReferenceTrajectory", "StepRecord", "TokenTransformer", "TrainConfig", "TrainResult", "TransformerFt",
    "build_ft", "celebahq_alphas_cumprod", "compute_lpips_curves", "ddim_step", "ddpm_unet_config",
    "evaluate_losses", "from_ddpm_checkpoint", "generate", "inversion_steps", "invert", "linear_alphas_cumprod",
    "load_ddpm_celebahq", "load_official_ft", "load_sdedit_celebahq", "lpips_alex_distance",
    "official_multi_attribute_coefficients", "plain_reverse", "predict_x0", "random_diffusion_model",
    "random_open_clip", "random_unet", "read_lpips_curve", "reverse_steps", "select_t_boost", "select_t_edit",
    "timestep_grid", "train_ft", "training_steps", "training_timesteps",
]

"""A Vision Transformer small enough to train from scratch on 28-64 px X-rays on a CPU (lesson 08).

It is timm's `VisionTransformer` with small dimensions, not a hand-written one: the same class that
builds ViT-B/16, so what the lesson shows about patches, tokens and attention carries over. The
pretrained ViT-B/16 comes from the registry (`medkit.models.get_backbone("vit_b_16")`, online).
"""

from torch import nn

from ..base.errors import DataError

__all__ = ["small_vit", "count_parameters"]


def small_vit(image_size: int = 28, patch_size: int = 4, num_classes: int = 2, in_chans: int = 1, embed_dim: int = 64,
              depth: int = 4, num_heads: int = 4, mlp_ratio: float = 2.0, drop_path_rate: float = 0.0) -> nn.Module:
    """Build a small timm VisionTransformer for `image_size` px grey images (random init).

    Args:
        image_size, patch_size: the image is cut into (image_size / patch_size)**2 patch tokens.
        embed_dim, depth, num_heads, mlp_ratio: the width and depth of the transformer.
        drop_path_rate: stochastic depth, a regulariser ViTs need more than CNNs.
    """
    from timm.models.vision_transformer import VisionTransformer

    if image_size % patch_size:
        raise DataError(f"image_size {image_size} is not a multiple of patch_size {patch_size}; pick e.g. "
                        f"patch_size={next(p for p in (4, 7, 2, 1) if image_size % p == 0)}.")
    if embed_dim % num_heads:
        raise DataError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}.")
    return VisionTransformer(img_size=image_size, patch_size=patch_size, in_chans=in_chans, num_classes=num_classes,
                             embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio,
                             drop_path_rate=drop_path_rate)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

"""Plots the lessons share: image grids with titles, grey images shown as grey."""

import numpy as np

__all__ = ["show_grid", "layer_groups_diagram", "unet_diagram", "simclr_diagram", "fedavg_diagram", "gradcam_diagram"]


def show_grid(images, titles=None, ncols: int = 8, size: float = 1.6, cmap: str = "gray", suptitle: str | None = None):
    """Show images (N, H, W[, C]) in a grid with optional titles; return the figure."""
    import matplotlib.pyplot as plt

    images = list(images)
    nrows = max(1, -(-len(images) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.1), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images)):
        image = np.asarray(image)
        ax.imshow(image, cmap=cmap if image.ndim == 2 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# Diagrams. Each reads what it draws from the objects it is given (the model's layer groups and requires_grad flags,
# the U-Net's feature shapes from one forward pass, the SimCLR head's layer sizes, the sites' image counts, the CAM
# layer's activations and gradients), so a change in the code changes the picture.

_FROZEN, _TRAINED, _EDGE = "#c8c8c8", "#7fb3d5", "#34495e"


def _box(ax, x, y, w, h, text, color, fontsize=8):
    """Draw a rounded box with centred text."""
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.05", fc=color, ec=_EDGE, lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=fontsize)


def _arrow(ax, start, end, text=None, color=_EDGE, fontsize=7):
    """Draw an arrow from `start` to `end`, with an optional label at its middle."""
    ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color=color, lw=1.2))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, text, ha="center", va="bottom", fontsize=fontsize,
                color=color)


def _canvas(width: float, height: float, title: str):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    return fig, ax


def _count(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n)


def layer_groups_diagram(model, name=None):
    """Draw a backbone's layer groups (stem to head) from its registry split, grey where every weight is frozen.

    The groups and their prefixes come from `models.parameter_groups`, the frozen state from each parameter's
    `requires_grad`: what `freeze.freeze_to(model, k)` set. Return the figure.
    """
    from torch import nn

    from ..models import get_spec, parameter_groups

    spec, groups = get_spec(name if name is not None else model), parameter_groups(model, name)
    norm = {f"{m_name}.{p_name}" if m_name else p_name for m_name, module in model.named_modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) for p_name, _ in module.named_parameters(recurse=False)}
    fig, ax = _canvas(10, 2.4, f"{spec.name}: {len(groups)} layer groups, input left, head right "
                      "(grey: frozen, blue: trained)")
    width = 10 / len(groups)
    for i, (prefixes, params) in enumerate(zip(spec.groups, groups)):
        trained = {n for n, p in params if p.requires_grad}
        frozen = not trained - norm  # freeze_to's train_bn=True leaves BatchNorm's scale and shift training
        state = "trained" if not frozen else "frozen, BatchNorm trains" if trained else "frozen"
        label = ", ".join(prefixes) if len(prefixes) <= 3 else f"{prefixes[0]} … {prefixes[-1]}"
        text = f"group {i}\n{label}\n{_count(sum(p.numel() for _, p in params))} weights\n{state}"
        _box(ax, i * width + 0.1, 0.5, width - 0.3, 1.3, text, _FROZEN if frozen else _TRAINED)
        if i:
            _arrow(ax, (i * width - 0.2, 1.15), (i * width + 0.1, 1.15))
    ax.text(5, 0.15, "freeze_to(model, k) freezes groups 0 … k-1; their BatchNorm layers keep training (scale, "
            "shift and running statistics) unless train_bn=False", ha="center", fontsize=7)
    return fig


def unet_diagram(segmenter, image_size: int):
    """Draw a U-Net from one forward pass at `image_size`: encoder features down, decoder up, skips across.

    `segmenter` is `segmentation.build_segmenter(...)`; every box shows the channels x height x width its
    stage really produced. Return the figure.
    """
    import torch

    net, shapes = segmenter.net, []
    hooks = [block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:]))) for block in net.decoder.blocks]
    training = segmenter.training
    try:
        with torch.no_grad():  # in eval mode (BatchNorm would refuse a 1-image batch), then the caller's mode again
            x = torch.zeros(1, 1, image_size, image_size)
            encoded = [tuple(f.shape[1:]) for f in segmenter.eval().encoder(x.expand(-1, 3, -1, -1))]
            out = tuple(segmenter(x).shape[1:])
    finally:
        for hook in hooks:
            hook.remove()
        segmenter.train(training)
    encoded = encoded[1:]  # the first "feature" is the input itself
    depth = len(encoded)
    fig, ax = _canvas(10, 1.1 * (depth + 1) + 1.2, f"U-Net, encoder {segmenter.encoder_name} "
                      f"({'ImageNet' if segmenter.encoder_weights else 'random'} init), decoder trained, at "
                      f"{image_size} px")
    top = 1.1 * depth + 0.6

    def row(level):  # encoder stage `level` (0 = first) sits on this row; level -1 is the full-size row above
        return top - 1.1 * (level + 1)

    for i, shape in enumerate(encoded):
        _box(ax, 0.4 + 0.35 * i, row(i), 2.4, 0.7, f"encoder stage {i + 1}\n{shape[0]} x {shape[1]} x {shape[2]}",
             _TRAINED)
        if i < depth - 1:
            _arrow(ax, (1.6 + 0.35 * i, row(i)), (1.6 + 0.35 * (i + 1), row(i + 1) + 0.7), "downsample" if i == 0 else None)
    for j, shape in enumerate(shapes):
        level = depth - 2 - j  # block j upsamples to the resolution of encoder stage `level` and joins its features
        x0 = 6.8 - 0.35 * max(level, 0)
        _box(ax, x0, row(level), 2.4, 0.7, f"decoder block {j + 1}\n{shape[0]} x {shape[1]} x {shape[2]}", "#f5cba7")
        if level >= 0:
            _arrow(ax, (2.8 + 0.35 * level, row(level) + 0.35), (x0, row(level) + 0.35), "skip: concatenate")
        if j == 0:
            deep = 2.8 + 0.35 * (depth - 1)
            _arrow(ax, (deep, row(depth - 1) + 0.35), (x0 + 0.3, row(level)), "bottleneck, upsample")
        else:
            below = 6.8 - 0.35 * max(level + 1, 0)
            _arrow(ax, (below + 1.2, row(level + 1) + 0.7), (x0 + 1.2, row(level)), "upsample" if j == 1 else None)
    ax.text(5, 0.1, f"input 1 x {image_size} x {image_size} → mask logits {out[0]} x {out[1]} x {out[2]}", ha="center",
            fontsize=8)
    return fig


def simclr_diagram(simclr, views, image, temperature: float = 0.5):
    """Draw SimCLR on one real image: two random views, the shared encoder, the projection head, NT-Xent.

    `simclr` is `ssl.SimCLR(encoder)` (its layer sizes are read from it), `views` an `ssl.ContrastiveViews`
    (the two views are drawn with it), `image` a uint8 (H, W) X-ray. Return the figure.
    """
    import torch

    x = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None, None]
    pair = [views(x)[0, 0].numpy() for _ in range(2)]
    dims = [simclr.encoder.feature_dim] + [layer.out_features for layer in simclr.projection if hasattr(layer, "out_features")]
    fig, ax = _canvas(10, 3.6, "SimCLR: two views of one X-ray must find each other among the batch's other views")
    ax.imshow(np.asarray(image), cmap="gray", extent=(0.1, 1.5, 1.1, 2.5))
    for k, (view, y) in enumerate(zip(pair, (2.1, 0.3))):
        ax.imshow(view, cmap="gray", vmin=0, vmax=1, extent=(2.1, 3.3, y, y + 1.2))
        _arrow(ax, (1.5, 1.8), (2.1, y + 0.6))
        _box(ax, 3.7, y + 0.2, 1.8, 0.8, f"encoder f\n(shared)\n{simclr.encoder.feature_dim} features", _TRAINED)
        _box(ax, 6.0, y + 0.2, 1.8, 0.8, "projection g\n" + " → ".join(map(str, dims)), "#f5cba7")
        _arrow(ax, (3.3, y + 0.6), (3.7, y + 0.6))
        _arrow(ax, (5.5, y + 0.6), (6.0, y + 0.6), "h")
        _arrow(ax, (7.8, y + 0.6), (8.3, 1.5), f"z{k + 1}")
    _box(ax, 8.3, 1.1, 1.6, 0.9, f"NT-Xent\nτ = {temperature:g}", "#d5f5e3")
    ax.text(5, 0.05, "after pretraining, g is dropped: the encoder's features h are what lessons probe and fine-tune",
            ha="center", fontsize=7)
    return fig


def fedavg_diagram(site_sizes: dict, n_weights: int, rounds: int):
    """Draw one FedAvg round: each site trains locally and sends weights; the server averages them by image count.

    `site_sizes` is {site: number of training images} (the weights FedAvg uses are n_k / n, computed here),
    `n_weights` the model's parameter count (what travels), `rounds` how many rounds the lesson runs.
    """
    total = sum(site_sizes.values())
    fig, ax = _canvas(10, 3.8, f"Federated averaging: {rounds} rounds; images never leave a site, "
                      f"{_count(n_weights)} weights travel each way")
    _box(ax, 3.5, 2.7, 3.0, 0.8, "server: w ← Σ (n_k / n) w_k", "#d5f5e3", fontsize=9)
    width = 10 / len(site_sizes)
    for i, (name, n) in enumerate(site_sizes.items()):
        x = i * width + 0.3
        _box(ax, x, 0.3, width - 0.6, 0.9, f"{name}\n{n} images, local SGD", _TRAINED)
        centre = x + (width - 0.6) / 2
        _arrow(ax, (centre - 0.2, 1.2), (5.0 - 0.3 + 0.3 * i, 2.7), f"w_k, weight {n / total:.2f}", color="#1f618d")
        _arrow(ax, (5.2 - 0.3 + 0.3 * i, 2.7), (centre + 0.2, 1.2), None, color="#7d3c98")
    ax.text(5, 3.55, "purple: the averaged w is sent back to every site for the next round", ha="center", fontsize=7,
            color="#7d3c98")
    return fig


def gradcam_diagram(model, layer: str, x, image=None):
    """Draw Grad-CAM's steps on one real input: activations A^k, channel weights α_k (mean gradient), the map.

    `model` a classifier, `layer` the name of the layer explained (e.g. the lesson's `cfg.cam_layer`), `x` one
    preprocessed input (1, C, H, W); `image` what to show under the map (default: `x`'s first channel).
    """
    import matplotlib.pyplot as plt
    import torch
    import torch.nn.functional as F

    from ..cam.scratch import LayerHooks

    training = model.training
    with LayerHooks(model.get_submodule(layer)) as hooks:
        logits = model.eval()(x)
        cls = int(logits.argmax(1))
        logits[0, cls].backward()
    model.zero_grad(set_to_none=True)
    model.train(training)  # the caller's mode, as it was
    acts, grads = hooks.activations.detach()[0], hooks.gradients[0]
    alpha = grads.mean(dim=(1, 2))
    heat = F.relu((alpha[:, None, None] * acts).sum(0))
    heat = F.interpolate(heat[None, None], size=x.shape[-2:], mode="bilinear", align_corners=False)[0, 0].numpy()
    top = torch.argsort(alpha, descending=True)[:3].tolist()
    image = x[0, 0].detach().numpy() if image is None else np.asarray(image)
    fig, axes = plt.subplots(1, 6, figsize=(13, 2.6), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.6, 1]})
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title(f"input, class {cls}", fontsize=8)
    for ax, k in zip(axes[1:4], top):
        ax.imshow(acts[k].numpy(), cmap="viridis")
        ax.set_title(f"A^{k} at {layer}\n{acts.shape[1]} x {acts.shape[2]}, α = {alpha[k]:.2g}", fontsize=8)
    axes[4].bar(np.arange(len(alpha)), np.sort(alpha.numpy())[::-1], color=_TRAINED)
    axes[4].set_title(f"α_k = mean gradient, {len(alpha)} channels\n(sorted)", fontsize=8)
    axes[5].imshow(image, cmap="gray")
    axes[5].imshow(heat, cmap="jet", alpha=0.45)
    axes[5].set_title("ReLU(Σ α_k A^k), upsampled", fontsize=8)
    for ax in (*axes[:4], axes[5]):
        ax.axis("off")
    fig.tight_layout()
    return fig

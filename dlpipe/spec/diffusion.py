"""Spec pieces of a diffusion model (task generation, `model: {type: diffusion}`). It joins
the `model` union in model.py; its cross-field checks (sampling steps against timesteps,
guidance without classes, GAN-only keys) live with the task (dlpipe/tasks/generation.py)."""

# No `from __future__ import annotations` here: Pydantic would parse every field annotation
# from its string at import, a cost `dlpipe validate` pays on each run.

from typing import Annotated, Literal

from pydantic import Field

from dlpipe.spec.base import Probability, StrictModel, Width


class UNet(StrictModel):
    """The denoiser: a U-Net of residual blocks (group normalization, swish, the time and
    class embedding added in each), halving the side between levels, with skip connections
    from each level on the way down to the same level on the way up."""

    filters: Annotated[list[Width], Field(min_length=1, max_length=6)] = [32, 64]
    """Width of each level: the first at the image's size, each next at half the side (the
    side must divide by 2^(levels − 1)). The time embedding is 4 × the first width."""
    blocks: Annotated[int, Field(ge=1, le=4)] = 1
    """Residual blocks per level on the way down (one more on the way up)."""
    attention: bool = True
    """Self-attention over the pixels at the lowest resolution (in its blocks and the middle)."""
    heads: Annotated[int, Field(ge=1, le=16)] = 1
    """Attention heads (with `attention`)."""
    dropout: Probability = 0.0
    """Dropout inside each residual block."""


class DDIM(StrictModel):
    """How images are drawn, during training (FID) and by the exported sampler: DDIM with
    η = 0, a deterministic function of the starting noise (and the class)."""

    steps: Annotated[int, Field(ge=1, le=1000)] = 50
    """Denoising steps, evenly spaced over the training timesteps (at most `model.timesteps`).
    Fewer: faster sampling, coarser images. The exported sampler runs exactly these."""
    guidance: Annotated[float, Field(ge=0, le=20)] = 1.0
    """Classifier-free guidance weight w (with `data.target`): ε = ε(∅) + w·(ε(y) − ε(∅)).
    1: the conditional prediction alone; above 1: images truer to their class, less varied
    (each step then runs the denoiser twice). Needs a target when not 1."""


class Diffusion(StrictModel):
    """A denoising diffusion model (DDPM training, DDIM sampling) for task generation: a
    U-Net learns to predict the noise added to a training image at a random step of the
    noise schedule; images are drawn by denoising standard normal noise. With `data.target`
    the denoiser is class-conditioned (and sampling can use classifier-free guidance).
    Images are scaled to −1..1 from the training split's value range, and the sampler's
    output back, so the exported sampler emits images in the data's own units."""

    type: Literal["diffusion"]
    """Picks this architecture: a denoising diffusion model."""
    timesteps: Annotated[int, Field(ge=2, le=10000)] = 1000
    """Steps T of the forward (noising) process the denoiser is trained on."""
    noise_schedule: Literal["linear", "cosine"] = "cosine"
    """How noise grows over the T steps: `linear` in the variance β (Ho et al. 2020, β from
    1e-4 to 0.02 at T = 1000), or `cosine` in the signal ᾱ (Nichol & Dhariwal 2021), which
    destroys small images less abruptly."""
    unet: UNet = UNet()
    """The denoiser network."""
    ema: Annotated[float, Field(ge=0, lt=1)] = 0.999
    """Decay of the exponential moving average of the denoiser's weights, which sampling and
    export use (0: the trained weights themselves). Early updates use min(ema, (1 + n)/(10 + n))
    after n updates, so a short run is not held at its initial weights."""
    label_dropout: Probability = 0.1
    """With `data.target`: the share of training images whose class is replaced by "no
    class", so one denoiser learns both predictions classifier-free guidance mixes."""
    sampler: DDIM = DDIM()
    """DDIM sampling (FID during training, the exported sampler)."""

"""DiffuSETS: latent diffusion for 12-lead ECGs conditioned on clinical text and patient information."""

__version__ = "0.1.0"

"""DepthDif: densify sparse ocean temperature observations with conditional diffusion."""

__version__ = "0.1.0"

"""Initialisation heuristics for the rows of tokens a new vocabulary adds."""
from .baselines import focus, mean, random, sparsemax
from .common import Estimate, Source
from .tokenadapt import global_, hybrid, local

__all__ = ["Estimate", "Source", "focus", "global_", "hybrid", "local", "mean", "random", "sparsemax"]

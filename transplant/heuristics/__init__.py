"""Initialisation heuristics for the rows of tokens a new vocabulary adds (special tokens: common.specials)."""
from .baselines import focus, mean, random, sparsemax
from .common import Estimate, Source
from .omp import batch_omp, omp_aux, omp_donor
from .tokenadapt import global_, hybrid, local

__all__ = ["Estimate", "Source", "batch_omp", "focus", "global_", "hybrid", "local", "mean", "omp_aux", "omp_donor",
           "random", "sparsemax"]

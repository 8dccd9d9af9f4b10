"""Initialisation heuristics for the rows of tokens a new vocabulary adds, and the role map for special tokens."""
from .baselines import focus, mean, random, sparsemax
from .common import Estimate, Source
from .omp import batch_omp, omp_aux, omp_donor
from tokenshift.common.specials import match_by_role, rows_by_role, special_roles
from .tokenadapt import global_, hybrid, local

__all__ = ["Estimate", "Source", "batch_omp", "focus", "global_", "hybrid", "local", "match_by_role", "mean",
           "omp_aux", "omp_donor", "random", "rows_by_role", "sparsemax", "special_roles"]

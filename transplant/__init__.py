"""tokenshift.transplant: give a pretrained model a new tokenizer (TokenAdapt and the baselines)."""
from .api import METHODS, TRAINED_METHODS, TransplantReport, save_transplant, transplant
from .aux import AuxEmbedder

__all__ = ["METHODS", "TRAINED_METHODS", "AuxEmbedder", "TransplantReport", "save_transplant", "transplant"]

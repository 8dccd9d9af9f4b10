"""tokenshift.transplant: give a pretrained model a new tokenizer (TokenAdapt, OMP and the baselines),
embedding/head recovery finetuning, dynamic tokenization and ANN output vocabularies (FAISS is imported only when an index is built)."""
from .ann import AnnVocabulary
from .api import TransplantReport, save_transplant, transplant
from .auxiliary import AuxEmbedder
from .convert import Recovery, convert
from .dynamic import DynamicTokenizer, HeuristicEmbedder, score_dynamic
from .distill import distill_transplant
from .finetune import finetune_embeddings
from .methods import (ALL_METHODS, DONOR_METHODS, METHODS, REGISTRY, TRAINED_METHODS, GlobalOptions, LocalOptions,
                      NoOptions, OmpAuxOptions, OmpDonorOptions, TokenAdaptOptions, ZettOptions)

__all__ = ["ALL_METHODS", "DONOR_METHODS", "METHODS", "REGISTRY", "TRAINED_METHODS", "AnnVocabulary", "AuxEmbedder",
           "DynamicTokenizer", "GlobalOptions", "HeuristicEmbedder", "LocalOptions", "NoOptions", "OmpAuxOptions",
           "OmpDonorOptions", "Recovery", "TokenAdaptOptions", "TransplantReport", "ZettOptions", "convert",
           "distill_transplant", "finetune_embeddings", "save_transplant", "score_dynamic", "transplant"]

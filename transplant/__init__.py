"""tokenshift.transplant: give a pretrained model a new tokenizer (TokenAdapt, OMP and the baselines),
embedding/head recovery finetuning, dynamic tokenization and ANN output vocabularies (FAISS is imported only when an index is built)."""
from .ann import AnnVocabulary
from .api import ALL_METHODS, DONOR_METHODS, METHODS, TRAINED_METHODS, TransplantReport, save_transplant, transplant
from .auxiliary import AuxEmbedder
from .dynamic import DynamicTokenizer, HeuristicEmbedder, score_dynamic
from .distill import distill_transplant
from .finetune import finetune_embeddings

__all__ = ["ALL_METHODS", "distill_transplant", "DONOR_METHODS", "METHODS", "TRAINED_METHODS", "AnnVocabulary", "AuxEmbedder",
           "DynamicTokenizer", "HeuristicEmbedder", "TransplantReport", "finetune_embeddings", "save_transplant", "score_dynamic", "transplant"]

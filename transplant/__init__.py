"""tokenshift.transplant: give a pretrained model a new tokenizer (TokenAdapt and the baselines),
dynamic tokenization and ANN output vocabularies."""
from .api import METHODS, TRAINED_METHODS, TransplantReport, save_transplant, transplant
from .aux import AuxEmbedder
from .dynamic import DynamicTokenizer, HeuristicEmbedder, score_dynamic

__all__ = ["METHODS", "TRAINED_METHODS", "AnnVocabulary", "AuxEmbedder", "DynamicTokenizer", "HeuristicEmbedder",
           "TransplantReport", "save_transplant", "score_dynamic", "transplant"]


def __getattr__(name: str):
    if name == "AnnVocabulary":  # FAISS is optional: import it only when asked for
        from .ann import AnnVocabulary

        return AnnVocabulary
    raise AttributeError(name)

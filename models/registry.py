"""The one table of model types: each model class adds itself when it is defined.

Loading a saved folder (`base.load_pretrained`), building a model from its
config (`lit.build_model`), LightningCLI's config types and the checkpoint
allow-list all read this table, so a new model type is its class and nothing
else. This module imports no model module; `tokenshift.models/__init__.py`
imports them all, and Python runs it before any module of the package, so the
table is full whenever code outside the package reads it. Its order is the
order the classes are defined in (that of the package's imports).
"""
from __future__ import annotations

from typing import Any

MODELS: dict[str, type] = {}  # model_type -> model class
CONFIGS: dict[type, type] = {}  # config dataclass -> model class


class Registered:
    """Mixin of the model base classes: a subclass that sets its own `model_type` registers itself.

    `needs_tokenizer`: the model is built as `cls(config, tokenizer)` instead of `cls(config)`.
    """

    model_type = ""
    config_class: type = object
    needs_tokenizer = False

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("model_type"):  # a subclass that inherits its type is not a new one
            register(cls)


def register(cls: type) -> type:
    """Add `cls` under its `model_type` and `config_class`; a name or config already taken is an error."""
    if cls.config_class is object:
        raise TypeError(f"{cls.__name__} sets model_type {cls.model_type!r} but no config_class")
    for key, table in ((cls.model_type, MODELS), (cls.config_class, CONFIGS)):
        if key in table and table[key] is not cls:
            raise ValueError(f"{cls.__name__} claims {getattr(key, '__name__', key)!r}, "
                             f"already taken by {table[key].__name__}")
    MODELS[cls.model_type] = cls
    CONFIGS[cls.config_class] = cls
    return cls


def model_for(config: Any) -> type | None:
    """The model class a config builds (a subclass of a registered config counts, as isinstance would)."""
    for klass in type(config).__mro__:
        if klass in CONFIGS:
            return CONFIGS[klass]
    return None


def config_classes() -> list[type]:
    """Every registered config dataclass, in registration order."""
    return list(CONFIGS)

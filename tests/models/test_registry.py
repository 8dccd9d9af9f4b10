"""The model registry: every model type is listed once, by its class, and every reader follows it."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from tokenshift.models import (ByteLM, ByteLMConfig, FlexiTokensConfig, FlexiTokensLM, HATConfig, HATLM, TokenLM,
                               TokenLMConfig, registry)
from tokenshift.models.base import PretrainedByteLM, load_pretrained
from tokenshift.models.lit import build_model


@pytest.fixture
def scratch_registry(monkeypatch):
    """Copies of the registry's tables for the test: a class it defines is forgotten afterwards."""
    monkeypatch.setattr(registry, "MODELS", dict(registry.MODELS))
    monkeypatch.setattr(registry, "CONFIGS", dict(registry.CONFIGS))


@dataclass
class EchoConfig:
    width: int = 3


def test_the_registry_holds_the_four_model_types():
    assert registry.MODELS == {"hat": HATLM, "flexitokens": FlexiTokensLM, "bytelm": ByteLM, "tokenlm": TokenLM}
    assert registry.CONFIGS == {HATConfig: HATLM, FlexiTokensConfig: FlexiTokensLM, ByteLMConfig: ByteLM,
                                TokenLMConfig: TokenLM}
    assert all(cls.config_class is config for config, cls in registry.CONFIGS.items())


def test_a_new_subclass_registers_itself_and_is_built_and_loaded(scratch_registry, tmp_path):
    class EchoLM(PretrainedByteLM):
        model_type = "echo"
        config_class = EchoConfig

        def __init__(self, config: EchoConfig):
            super().__init__(config)
            self.weight = nn.Parameter(torch.arange(float(config.width)))

    assert registry.MODELS["echo"] is EchoLM and registry.model_for(EchoConfig()) is EchoLM
    model = build_model(EchoConfig(width=5))
    assert type(model) is EchoLM and model.config.width == 5
    model.save_pretrained(tmp_path / "echo")
    torch.testing.assert_close(load_pretrained(tmp_path / "echo").weight, model.weight)


def test_a_subclass_without_its_own_type_is_not_registered_and_a_taken_name_is_refused(scratch_registry):
    class TweakedHAT(HATLM):  # inherits model_type "hat": the same type, not a new one
        pass

    assert registry.MODELS["hat"] is HATLM
    with pytest.raises(ValueError, match="already taken by HATLM"):
        class AnotherHAT(PretrainedByteLM):
            model_type = "hat"
            config_class = EchoConfig
    with pytest.raises(TypeError, match="no config_class"):
        class NoConfig(PretrainedByteLM):
            model_type = "noconfig"


def test_build_model_errors_name_the_registered_configs():
    with pytest.raises(TypeError, match="unknown model config EchoConfig; use HATConfig, FlexiTokensConfig, "
                                        "ByteLMConfig or TokenLMConfig"):
        build_model(EchoConfig())
    with pytest.raises(ValueError, match="a TokenLM needs its tokenizer"):
        build_model(TokenLMConfig())


def test_checkpoints_may_hold_every_registered_config():
    safe = set(torch.serialization.get_safe_globals())
    assert set(registry.config_classes()) <= safe

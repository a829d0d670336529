"""Building and loading the language models behind ``lm`` policies (imports transformers lazily).

You are in the language-model workshop. Two ways to get a model:

- **Built for a workflow** (:func:`build_tokenizer`, :func:`build_model`): a byte-level BPE
  tokenizer trained with ``tokenizers`` on the workflow's vocabulary (keywords, tool, decision,
  field and choice names) and on generated case transcripts, and a small Llama-architecture
  model (``LlamaConfig``; head size 64, which vLLM's CPU attention supports) with random
  weights. Digits are single tokens, so amounts are copied digit by digit, and the newline is
  always a token of its own: it ends every model line and is the stop token of generation.
- **A local Hugging Face checkpoint directory** (Qwen, Llama, …; :func:`load_pretrained`) with
  LoRA adapters added by ``peft`` (:func:`add_lora`). Only local files are read
  (``HF_HUB_OFFLINE=1``, ``local_files_only=True``): nothing is downloaded.

Either way the model and tokenizer save as a plain Hugging Face directory that vLLM serves.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workflows.engine import WorkflowSpec

from .config import LMModelConfig

__all__ = [
    "SPECIAL_TOKENS",
    "ModelBundle",
    "add_lora",
    "build_model",
    "build_tokenizer",
    "load_pretrained",
    "newline_token_ids",
    "workflow_vocabulary",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

PAD, BOS, EOS = "<pad>", "<s>", "</s>"
SPECIAL_TOKENS = (PAD, BOS, EOS)
KEYWORDS = ("CASE", "TOOLS", "DECISIONS", "CALL", "DECIDE", "BECAUSE", "RESULT", "ERROR")


def workflow_names(spec: WorkflowSpec) -> list[str]:
    """Every name of the workflow a model writes or reads, and the format's keywords."""
    names: list[str] = [*KEYWORDS, spec.name, *spec.tool_names, *spec.decision_names]
    for spec_field in spec.case_fields:
        names.append(spec_field.name)
        names.extend(spec_field.choices)
    for tool in spec.tools:
        names.extend(tool.returns)
        if tool.result_name:
            names.append(tool.result_name)
    for decision in spec.decisions:
        for argument in decision.arguments:
            names.append(argument.name)
            names.extend(argument.choices)
    return list(dict.fromkeys(name for name in names if name))


def workflow_vocabulary(spec: WorkflowSpec) -> list[str]:
    """Lines that carry every name of the workflow and the format's keywords (tokenizer corpus)."""
    lines = [" ".join(workflow_names(spec))]
    lines += [f"CALL {tool} {{}}" for tool in spec.tool_names]
    lines += [f"RESULT {tool} {{}}" for tool in spec.tool_names]
    lines += [f"DECIDE {decision} {{}} BECAUSE" for decision in spec.decision_names]
    return lines


# Identifiers (letters and underscores) stay whole, digits stand alone, other symbols group, and a
# newline is always a piece of its own; a leading space sticks to the piece it precedes.
_PIECES = r" ?[A-Za-z_]+| ?[0-9]| ?[^\sA-Za-z_0-9]+|\n| +(?! )| +"


def build_tokenizer(spec: WorkflowSpec, texts: Iterable[str], *, vocab_size: int) -> Any:
    """A ``PreTrainedTokenizerFast`` trained on the workflow's vocabulary and ``texts``.

    Byte-level BPE (any text encodes, nothing is unknown) over pieces that never cross a newline,
    split digits one by one and keep identifiers whole; every workflow name (tools, decisions,
    fields, arguments, choices, result columns) and keyword is one token, with or without a
    leading space, so a model cannot write half of one name and half of another. ``<s>`` is
    prepended when a text is encoded with special tokens (as vLLM's server does)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PIECES), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    names = workflow_names(spec)
    byte_names = [_byte_level(prefix + name) for name in names for prefix in ("", " ")]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [*workflow_vocabulary(spec) * 20, *texts]
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    _add_whole_names(tokenizer, byte_names)
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        padding_side="left",
        model_max_length=1 << 20,
    )


def _byte_level(text: str) -> str:
    """``text`` in byte-level BPE's alphabet (a space is ``Ġ``)."""
    from tokenizers import pre_tokenizers

    return "".join(
        piece
        for piece, _ in pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False).pre_tokenize_str(
            text
        )
    )


def _add_whole_names(tokenizer: Any, byte_names: list[str]) -> None:
    """Make each name one token: put it in the vocabulary and let BPE take a piece found whole in
    the vocabulary as it is (``ignore_merges``, as Llama 3's tokenizer does) before any merge."""
    import json

    from tokenizers import Tokenizer

    state = json.loads(tokenizer.to_str())
    vocab: dict[str, int] = state["model"]["vocab"]
    for name in byte_names:
        vocab.setdefault(name, len(vocab))
    state["model"]["ignore_merges"] = True
    tokenizer.model = Tokenizer.from_str(json.dumps(state)).model


def build_model(config: LMModelConfig, tokenizer: Any, *, seed: int) -> Any:
    """A freshly initialised ``LlamaForCausalLM`` of the configured size for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers,
        num_attention_heads=config.hidden_size // config.head_size,
        num_key_value_heads=config.hidden_size // config.head_size,
        head_dim=config.head_size,
        max_position_embeddings=config.max_length,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        initializer_range=0.02,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(llama)
    return model.float()


def load_pretrained(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """Model and tokenizer from a local Hugging Face directory (never the hub)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a Hugging Face model directory (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
    return model, tokenizer


def add_lora(model: Any, config: LMModelConfig) -> Any:
    """Wrap ``model`` with trainable LoRA adapters (peft); the base weights stay frozen."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=list(config.lora_targets),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


def newline_token_ids(tokenizer: Any) -> list[int]:
    """Ids of every token whose text contains a newline: generation stops after any of them."""
    ids = []
    for token_id in range(len(tokenizer)):
        if "\n" in tokenizer.decode([token_id]):
            ids.append(token_id)
    return ids


@dataclass(slots=True)
class ModelBundle:
    """A model ready to train or sample: the torch module, its tokenizer and what generation needs."""

    model: Any  # a transformers PreTrainedModel, or a peft PeftModel around one
    tokenizer: Any
    stop_token_ids: list[int]
    base_path: str | None = None  # the local checkpoint a LoRA model was built on
    lora: bool = False

    @property
    def bos_ids(self) -> list[int]:
        bos = self.tokenizer.bos_token_id
        return [bos] if bos is not None and self.tokenizer.bos_token == BOS else []

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    def trainable_parameters(self) -> list[Any]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

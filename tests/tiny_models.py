"""Build tiny random-weight models on disk, exactly as a user's local model directory looks.

Every builder writes a directory that the real loaders read with no network: transformers
``save_pretrained`` output (config, weights, image processor, tokenizer) for ``hf:`` and an
``open_clip_config.json`` plus weights for ``open_clip:``. Weights are seeded, so two builds of
the same model are identical.

The tokenizer is a byte-level BPE with no merges (every byte is a token), written through
``CLIPTokenizer`` so it loads back through ``AutoTokenizer``/``AutoProcessor``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "SAMPLE_TEXTS",
    "TINY_BUILDERS",
    "TINY_IMAGE_SIZE",
    "TINY_PROJECTION_DIM",
    "build_tiny_hf_clip",
    "build_tiny_hf_siglip",
    "build_tiny_open_clip",
    "build_vit_b32_sized_hf_clip",
    "sample_pictures",
]

TINY_IMAGE_SIZE = 32
TINY_PROJECTION_DIM = 16
_TINY_WIDTH = 32
_TINY_TEXT_LENGTH = 24
_BOS, _EOS = "<|startoftext|>", "<|endoftext|>"


def _tiny_clip_tokenizer(max_length: int) -> Any:
    """Read from the two files a CLIP tokenizer is made of: the one constructor that
    transformers 4 (file paths) and 5 (vocab and merges objects) both accept."""
    import tempfile

    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for symbol in alphabet:
        vocab[symbol] = len(vocab)
    for symbol in alphabet:
        vocab[symbol + "</w>"] = len(vocab)
    vocab[_BOS] = len(vocab)
    vocab[_EOS] = len(vocab)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(folder) / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer.from_pretrained(folder, model_max_length=max_length)


def _tiny_tower(**overrides: Any) -> dict[str, Any]:
    tower = {
        "hidden_size": _TINY_WIDTH,
        "intermediate_size": 2 * _TINY_WIDTH,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    tower.update(overrides)
    return tower


def _special_ids(tokenizer: Any) -> dict[str, int]:
    return {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "vocab_size": len(tokenizer),
    }


def build_tiny_hf_clip(directory: Path, *, seed: int = 0) -> Path:
    """A 2-layer transformers CLIPModel (32x32 pictures, 16-d projection) with its processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _tiny_clip_tokenizer(_TINY_TEXT_LENGTH)
    config = CLIPConfig(
        text_config=_tiny_tower(
            max_position_embeddings=_TINY_TEXT_LENGTH, **_special_ids(tokenizer)
        ),
        vision_config=_tiny_tower(image_size=TINY_IMAGE_SIZE, patch_size=8),
        projection_dim=TINY_PROJECTION_DIM,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    return directory


def build_tiny_hf_siglip(directory: Path, *, seed: int = 0) -> Path:
    """A 2-layer transformers SiglipModel (32x32 squashed pictures, 32-d) with its processor.

    The tokenizer is the tiny byte-level one (a real SigLIP uses SentencePiece); the model code
    path — last-token pooling, ``padding="max_length"``, squash resize — is the real one.
    """
    import torch
    import transformers
    from transformers import (
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        SiglipTextConfig,
        SiglipVisionConfig,
    )

    tokenizer = _tiny_clip_tokenizer(_TINY_TEXT_LENGTH)
    text = _tiny_tower(max_position_embeddings=_TINY_TEXT_LENGTH, **_special_ids(tokenizer))
    vision = _tiny_tower(image_size=TINY_IMAGE_SIZE, patch_size=8)
    # transformers 5 wants config objects (dicts make SiglipConfig validate its own
    # inconsistent defaults); transformers 4 accepts only dicts
    towers: dict[str, Any] = {
        "text_config": SiglipTextConfig(**text),
        "vision_config": SiglipVisionConfig(**vision),
    }
    if int(transformers.__version__.split(".")[0]) < 5:
        towers = {name: tower.to_dict() for name, tower in towers.items()}
    config = SiglipConfig(**towers)
    torch.manual_seed(seed)
    model = SiglipModel(config).eval()
    image_processor = SiglipImageProcessor(
        size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    image_processor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


_TINY_OPEN_CLIP_CFG: dict[str, Any] = {
    "embed_dim": TINY_PROJECTION_DIM,
    "vision_cfg": {
        "image_size": TINY_IMAGE_SIZE,
        "layers": 2,
        "width": _TINY_WIDTH,
        "head_width": 16,
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": _TINY_TEXT_LENGTH,
        "vocab_size": 49408,  # open_clip's bundled SimpleTokenizer emits ids up to 49407
        "width": _TINY_WIDTH,
        "heads": 2,
        "layers": 2,
    },
}


def build_tiny_open_clip(directory: Path, *, seed: int = 0) -> Path:
    """A 2-layer open_clip CLIP: ``open_clip_config.json`` + ``open_clip_model.safetensors``.

    This is the layout open_clip's ``push_to_hf_hub`` writes and ``local-dir:`` reads.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.CLIP(**_TINY_OPEN_CLIP_CFG).eval()
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": _TINY_OPEN_CLIP_CFG,
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
            "interpolation": "bicubic",
            "resize_mode": "shortest",
        },
    }
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    return directory


def build_vit_b32_sized_hf_clip(directory: Path, *, seed: int = 0) -> Path:
    """A random-weight CLIPModel shaped like ViT-B/32 (224 px, patch 32, 512-d) for benchmarks.

    The vision tower has the default CLIPConfig (ViT-B/32) settings; the text tower is tiny,
    because benchmarks time image embedding. Saving takes a few seconds and ~350 MB of disk.
    """
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = _tiny_clip_tokenizer(77)
    config = CLIPConfig(
        text_config=_tiny_tower(max_position_embeddings=77, **_special_ids(tokenizer)),
        vision_config={"image_size": 224, "patch_size": 32},
        projection_dim=512,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(
        directory
    )
    return directory


# The tiny image/text models by the name tests parametrise over: (embedder kind, builder).
TINY_BUILDERS = {
    "hf-clip": ("hf", build_tiny_hf_clip),
    "hf-siglip": ("hf", build_tiny_hf_siglip),
    "open_clip": ("open_clip", build_tiny_open_clip),
}


def sample_pictures(count: int = 5, seed: int = 0) -> list[Image.Image]:
    """Random RGB pictures of awkward sizes: odd margins, portrait, landscape, square."""
    sizes = [(40, 50), (67, 100), (32, 32), (100, 31), (55, 55), (33, 64), (45, 32), (35, 32)]
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for h, w in (sizes * (count // len(sizes) + 1))[:count]
    ]


SAMPLE_TEXTS = [
    "a photo of a cat",
    "a very long description of a red bicycle leaning on a wall at dusk",
    "x",
    "stock market report",
    "고양이 사진",
]

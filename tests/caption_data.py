"""Captioned test data: a small Flickr8k-style dataset of coloured pictures, in every import
layout, and a tiny random-weight BLIP (transformers) saved like a user's local model."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from tests.corpus import coloured_picture

__all__ = ["CAPTIONS", "build_tiny_blip", "picture", "write_dataset"]

# picture name -> (colour, captions); several captions per picture, like Flickr8k
CAPTIONS: dict[str, tuple[tuple[int, int, int], list[str]]] = {
    "red_1.png": (
        (220, 30, 30),
        ["A red fire truck parked on the street .", "a fire engine waiting by the road"],
    ),
    "red_2.png": (
        (205, 40, 35),
        ["A red fire truck driving down the street .", "a fire engine on a city road"],
    ),
    "red_3.png": (
        (235, 25, 45),
        ["A red fire truck parked near a building .", "A red fire truck parked on the street ."],
    ),
    "green_1.png": (
        (30, 200, 40),
        ["A green field with tall grass .", "grass growing in a wide meadow"],
    ),
    "green_2.png": (
        (40, 185, 60),
        ["A dog running across a green field of grass .", "a green meadow with grass"],
    ),
    "blue_1.png": (
        (30, 40, 220),
        ["A blue boat on the calm sea .", "a boat floating on the water"],
    ),
    "blue_2.png": (
        (45, 60, 200),
        ["A small boat sailing on the blue sea .", "a boat on the ocean"],
    ),
    "yellow_1.png": ((230, 220, 30), ["A yellow taxi in the city .", "a cab driving downtown"]),
    "yellow_2.png": (
        (215, 210, 50),
        ["A yellow taxi waiting at the corner .", "a taxi cab on a city street"],
    ),
}


def picture(name: str) -> Image.Image:
    rgb = CAPTIONS[name][0]
    return coloured_picture(rgb, (48 + len(name), 40))


def write_dataset(root: Path, layout: str = "csv", *, missing: tuple[str, ...] = ()) -> Path:
    """Write the dataset in ``layout`` and return the path to import.

    ``csv``: Flickr8k Kaggle layout (``Images/`` + ``captions.txt``: ``image,caption``);
    ``token``: ``Flicker8k_Dataset/`` + ``Flickr8k.token.txt`` (``name#n<TAB>caption``);
    ``jsonl``: ``pics/`` + ``data.jsonl`` with ``file_name`` and a list of ``captions``;
    ``tsv``: ``pics/`` + ``data.tsv`` with columns ``path`` and ``text``.
    ``missing`` pictures are listed in the captions file but not written.
    """
    folder = {"csv": "Images", "token": "Flicker8k_Dataset"}.get(layout, "pics")
    (root / folder).mkdir(parents=True, exist_ok=True)
    for name in CAPTIONS:
        if name not in missing:
            picture(name).save(root / folder / name)
    pairs = [(name, c) for name, (_, caps) in CAPTIONS.items() for c in caps]
    if layout == "csv":
        lines = ["image,caption"] + [f'{n},"{c}"' for n, c in pairs]
        (root / "captions.txt").write_text("\n".join(lines) + "\n")
        return root
    if layout == "token":
        counters: dict[str, int] = {}
        lines = []
        for n, c in pairs:
            lines.append(f"{n}#{counters.get(n, 0)}\t{c}")
            counters[n] = counters.get(n, 0) + 1
        (root / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
        return root
    if layout == "jsonl":
        rows = [{"file_name": f"pics/{n}", "captions": caps} for n, (_, caps) in CAPTIONS.items()]
        path = root / "data.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return path
    if layout == "tsv":
        lines = ["path\ttext"] + [f"pics/{n}\t{c}" for n, c in pairs]
        path = root / "data.tsv"
        path.write_text("\n".join(lines) + "\n")
        return path
    raise ValueError(layout)


_WORDS = [
    "a",
    "the",
    "red",
    "blue",
    "green",
    "yellow",
    "dog",
    "cat",
    "truck",
    "apple",
    "kite",
    "field",
    "frog",
    "boat",
    "sky",
    "taxi",
    "on",
    "in",
    "with",
    "of",
    "and",
    "is",
    "street",
    "table",
    "water",
    "city",
]


def build_tiny_blip(directory: Path, *, seed: int = 0) -> Path:
    """A 2-layer BlipForConditionalGeneration (32x32 pictures) with its processor.

    The word-piece vocabulary is a few dozen words. Random weights would mostly emit special
    tokens (an empty caption), so the LM head's bias is lowered for every special token: the
    model then generates words, which is what the caption path needs to be exercised.
    """
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )

    directory.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # from a vocab.txt: the one way transformers 4 (a file path) and 5 both build it
    (directory / "vocab.txt").write_text("\n".join([*specials, *_WORDS, "[DEC]"]) + "\n")
    tokenizer = BertTokenizerFast.from_pretrained(
        directory, do_lower_case=True, bos_token="[DEC]", model_max_length=64
    )
    tower = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    text = BlipTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=256,
        encoder_hidden_size=32,
        bos_token_id=tokenizer.bos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **tower,
    )
    vision = BlipVisionConfig(image_size=32, patch_size=8, projection_dim=16, **tower)
    config = BlipConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=16
    )
    torch.manual_seed(seed)
    model = BlipForConditionalGeneration(config).eval()
    special_ids = [tokenizer.convert_tokens_to_ids(t) for t in [*specials, "[DEC]"]]
    with torch.no_grad():
        bias = model.text_decoder.cls.predictions.decoder.bias
        bias[special_ids] = -20.0
    model.save_pretrained(directory)
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    processor.save_pretrained(directory)
    return directory


def solid(rgb: tuple[int, int, int]) -> Image.Image:
    return coloured_picture(rgb, (52, 44))

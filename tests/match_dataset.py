"""A labelled lost-and-found set for record matching tests and ``bench/match_quality.py``.

Each object gets a *lost* post and a *found* post (English text, optional category, place,
time, optional photo). Object identity is planted in the pictures: the category is the shape,
the object's colour is the fill, its distinguishing detail is a small mark at a detail-specific
spot; two photos of one object differ by position, size, background and noise, so the colour-
aware ``fake:`` embedder (a stand-in for CLIP) sees them as close but not equal. Every object
also gets a *near miss*: a found post of another category with the same colour, material,
detail, place and time and the same sentence but the noun ("black leather wallet" vs "black
leather notebook").

Photos come in four patterns by object (both posts, lost only, found only, none), so pairs of
every photo group exist. Objects split into a calibration half and a test half (even/odd).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from clipatlas.matching import LabelledPair

__all__ = ["MatchDataset", "build_match_dataset"]

CATEGORIES: dict[str, tuple[str, ...]] = {
    "wallet": ("wallet", "billfold"),
    "notebook": ("notebook", "diary"),
    "phone": ("phone", "smartphone"),
    "umbrella": ("umbrella", "folding umbrella"),
    "backpack": ("backpack", "rucksack"),
    "keys": ("set of keys", "key ring"),
    "scarf": ("scarf", "muffler"),
    "glasses": ("glasses", "spectacles"),
}
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 25),
    "brown": (120, 72, 30),
    "red": (205, 30, 30),
    "blue": (30, 60, 200),
    "white": (240, 240, 240),
    "green": (40, 150, 60),
    "yellow": (235, 205, 35),
    "pink": (240, 130, 175),
    "grey": (128, 128, 128),
}
MATERIALS = ("leather", "plastic", "canvas", "metal", "fabric", "nylon")
DETAILS = (
    ("with a cat sticker", (0.15, 0.15), (250, 140, 0)),
    ("with initials engraved", (0.7, 0.2), (200, 200, 0)),
    ("with a torn corner", (0.75, 0.75), (90, 60, 40)),
    ("with a small charm attached", (0.2, 0.7), (0, 200, 200)),
    ("with a red stripe", (0.45, 0.2), (220, 0, 0)),
    ("with a name tag", (0.45, 0.75), (255, 255, 255)),
    ("with a star pattern", (0.2, 0.45), (255, 215, 0)),
    ("with a gold logo", (0.7, 0.45), (212, 175, 55)),
)
PLACES = (
    "Gangnam station",
    "Seoul Forest park",
    "City Hall library",
    "Hongdae bus stop",
    "Yeouido park",
    "Jamsil stadium",
    "Itaewon cafe",
    "Sinchon bookstore",
)
_BASE = datetime(2026, 3, 1, tzinfo=UTC)

# The same posts in Korean (``language="ko"``), for runs with multilingual weights.
KOREAN: dict[str, str] = {
    "wallet": "지갑",
    "billfold": "반지갑",
    "notebook": "공책",
    "diary": "다이어리",
    "phone": "휴대폰",
    "smartphone": "스마트폰",
    "umbrella": "우산",
    "folding umbrella": "접이식 우산",
    "backpack": "백팩",
    "rucksack": "배낭",
    "set of keys": "열쇠 꾸러미",
    "key ring": "열쇠고리",
    "scarf": "스카프",
    "muffler": "목도리",
    "glasses": "안경",
    "spectacles": "안경",
    "black": "검은색",
    "brown": "갈색",
    "red": "빨간색",
    "blue": "파란색",
    "white": "흰색",
    "green": "초록색",
    "yellow": "노란색",
    "pink": "분홍색",
    "grey": "회색",
    "leather": "가죽",
    "plastic": "플라스틱",
    "canvas": "캔버스",
    "metal": "금속",
    "fabric": "천",
    "nylon": "나일론",
    "with a cat sticker": "고양이 스티커가 붙어 있음",
    "with initials engraved": "이니셜이 새겨져 있음",
    "with a torn corner": "모서리가 찢어져 있음",
    "with a small charm attached": "작은 장식이 달려 있음",
    "with a red stripe": "빨간 줄무늬가 있음",
    "with a name tag": "이름표가 붙어 있음",
    "with a star pattern": "별무늬가 있음",
    "with a gold logo": "금색 로고가 있음",
    "Gangnam station": "강남역",
    "Seoul Forest park": "서울숲",
    "City Hall library": "시청 도서관",
    "Hongdae bus stop": "홍대 버스정류장",
    "Yeouido park": "여의도공원",
    "Jamsil stadium": "잠실경기장",
    "Itaewon cafe": "이태원 카페",
    "Sinchon bookstore": "신촌 서점",
}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "en": (
        "Lost my {colour} {material} {noun} {detail} near {place}.",
        "Found a {colour} {material} {noun} {detail} at {place}.",
        "Someone left a {colour} {noun} {detail} at {place}.",
        "{colour} {material} {noun} found at {place}, {detail}.",
    ),
    "ko": (
        "{place} 근처에서 {colour} {material} {noun}을(를) 잃어버렸어요. {detail}.",
        "{place}에서 {colour} {material} {noun}을(를) 주웠습니다. {detail}.",
        "{place}에 누가 {colour} {noun}을(를) 두고 갔어요. {detail}.",
        "{colour} {material} {noun} 습득, {place}, {detail}.",
    ),
}


def _shape(draw: ImageDraw.ImageDraw, category: str, box: tuple[float, ...], fill: Any) -> None:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if category == "wallet":
        draw.rectangle((x0, y0 + h * 0.25, x1, y1 - h * 0.25), fill=fill)
    elif category == "notebook":
        draw.rectangle((x0 + w * 0.2, y0, x1 - w * 0.2, y1), fill=fill)
    elif category == "phone":
        draw.rounded_rectangle((x0 + w * 0.33, y0, x1 - w * 0.33, y1), radius=3, fill=fill)
    elif category == "umbrella":
        draw.polygon([(x0, y1), (x1, y1), ((x0 + x1) / 2, y0)], fill=fill)
    elif category == "backpack":
        draw.ellipse((x0 + w * 0.1, y0, x1 - w * 0.1, y1), fill=fill)
    elif category == "keys":
        draw.ellipse((x0, y0, x1, y1), outline=fill, width=max(3, int(w * 0.18)))
    elif category == "scarf":
        draw.polygon([(x0, y0), (x0 + w * 0.3, y0), (x1, y1), (x1 - w * 0.3, y1)], fill=fill)
    else:  # glasses
        draw.ellipse((x0, y0 + h * 0.3, x0 + w * 0.45, y1 - h * 0.3), fill=fill)
        draw.ellipse((x1 - w * 0.45, y0 + h * 0.3, x1, y1 - h * 0.3), fill=fill)


def draw_object(category: str, colour: str, detail: int, rng: np.random.Generator) -> Image.Image:
    """One photo of an object: a new view each call (position, size, background, noise)."""
    size = 64
    bg = tuple(int(v) for v in rng.integers(170, 215, 3))
    image = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(image)
    scale = rng.uniform(0.85, 1.0) * size * 0.8
    cx, cy = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
    box = (cx - scale / 2, cy - scale / 2, cx + scale / 2, cy + scale / 2)
    _shape(draw, category, box, COLOURS[colour])
    (fx, fy), mark = DETAILS[detail][1], DETAILS[detail][2]
    mx, my = box[0] + fx * scale, box[1] + fy * scale
    draw.rectangle((mx - 4, my - 4, mx + 4, my + 4), fill=mark)
    pixels = np.asarray(image, dtype=np.int16) + rng.integers(-6, 7, (size, size, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@dataclass
class MatchDataset:
    records_path: Path
    rows: list[dict[str, Any]]
    calibration_pairs: list[LabelledPair]
    test_pairs: list[LabelledPair]


def _pairs(lost: list[dict[str, Any]], found: list[dict[str, Any]]) -> list[LabelledPair]:
    return [LabelledPair(a["id"], b["id"], a["object"] == b["object"]) for a in lost for b in found]


def build_match_dataset(
    dest: Path, n_objects: int = 64, seed: int = 0, language: str = "en"
) -> MatchDataset:
    """Write ``records.jsonl`` and the photos into ``dest``; return rows and labelled pairs.

    ``language`` "ko" writes the same posts (same seed, same objects and photos) in Korean."""
    rng = np.random.default_rng(seed)
    templates = TEMPLATES[language]

    def say(word: str) -> str:
        return KOREAN.get(word, word) if language == "ko" else word

    photos = dest / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    cats = list(CATEGORIES)
    rows: list[dict[str, Any]] = []

    def post(
        obj: int,
        kind: str,
        category: str,
        colour: str,
        material: str,
        detail: int,
        place: str,
        when: datetime,
        photo: bool,
        noun: str,
        wording: int,
    ) -> None:
        rid = f"{kind}-{obj:03d}" if kind != "near" else f"found-n{obj:03d}"
        row: dict[str, Any] = {
            "id": rid,
            "kind": "lost" if kind == "lost" else "found",
            "description": templates[wording].format(
                colour=say(colour),
                material=say(material),
                noun=say(noun),
                detail=say(DETAILS[detail][0]),
                place=say(place),
            ),
            "place": say(place),
            "time": when.isoformat(),
            "object": obj if kind != "near" else -1 - obj,
        }
        if rng.random() < 0.8:
            row["category"] = category
        if photo:
            name = f"{rid}.png"
            draw_object(category, colour, detail, rng).save(photos / name)
            row["photo"] = f"photos/{name}"
        rows.append(row)

    for obj in range(n_objects):
        category = cats[obj % len(cats)]
        colour = str(rng.choice(list(COLOURS)))
        material = str(rng.choice(MATERIALS))
        detail = int(rng.integers(len(DETAILS)))
        place = str(rng.choice(PLACES))
        lost_at = _BASE + timedelta(days=float(rng.uniform(0, 14)))
        found_at = lost_at + timedelta(days=float(rng.uniform(0, 3)))
        pattern = (obj // len(cats)) % 4  # 0 both, 1 lost only, 2 found only, 3 none
        nouns = CATEGORIES[category]
        post(
            obj,
            "lost",
            category,
            colour,
            material,
            detail,
            place,
            lost_at,
            pattern in (0, 1),
            nouns[0],
            0,
        )
        post(
            obj,
            "found",
            category,
            colour,
            material,
            detail,
            place,
            found_at,
            pattern in (0, 2),
            str(rng.choice(nouns)),
            1 + int(rng.choice(3)),
        )
        other = cats[(cats.index(category) + 1 + int(rng.integers(len(cats) - 1))) % len(cats)]
        post(
            obj,
            "near",
            other,
            colour,
            material,
            detail,
            place,
            lost_at + timedelta(days=float(rng.uniform(0, 3))),
            bool(rng.random() < 0.5),
            CATEGORIES[other][0],
            1,
        )
    path = dest / "records.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            clean = {k: v for k, v in row.items() if k != "object"}
            fh.write(json.dumps(clean, ensure_ascii=False) + "\n")

    def half(parity: int) -> list[LabelledPair]:
        keep = [
            r for r in rows if (r["object"] if r["object"] >= 0 else -1 - r["object"]) % 2 == parity
        ]
        return _pairs(
            [r for r in keep if r["kind"] == "lost"], [r for r in keep if r["kind"] == "found"]
        )

    return MatchDataset(path, rows, half(0), half(1))

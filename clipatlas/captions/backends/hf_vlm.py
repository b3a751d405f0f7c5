"""``hf:<repo or local path>``: a local transformers vision-language model (SmolVLM, BLIP,
Florence-style, any ``AutoModelForImageTextToText`` model), loaded on first use, run in
batches on ``Settings.device`` (auto: CUDA, MPS, then CPU).

How the prompt reaches the model depends on the processor:

* it has a chat template (SmolVLM, Qwen2-VL, LLaVA, ...): one user turn with the picture and
  the retrieval-augmented prompt; the caption is what the model generates after it;
* it has none (BLIP-style captioners): the model captions the picture unconditionally, as
  such models are trained to; the prompt is not shown to it (``prompt_used`` is False in the
  caption's provenance), so retrieval cannot help these models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from clipatlas.captions.backends.base import CaptionRequest, clean_caption
from clipatlas.embedders.locate import locate_model
from clipatlas.embedders.runtime import resolve_device
from clipatlas.errors import CaptionBackendError, ConfigError
from clipatlas.settings import Settings

__all__ = ["HfCaptionModel", "create"]

KIND = "hf"


class HfCaptionModel:
    """A transformers image-text-to-text model as a caption backend."""

    def __init__(self, name: str, settings: Settings, *, batch_size: int = 8) -> None:
        if not name:
            raise ConfigError("hf caption backend needs a model: hf:<repo or local path>")
        self.location = locate_model(KIND, name)
        self.id = self.location.spec
        self.batch_size = batch_size
        self.max_new_tokens = min(settings.caption_max_tokens, 256)
        self._device_request = settings.device
        self._model: Any = None
        self._processor: Any = None
        self.chat = False

    @property
    def prompt_used(self) -> bool:
        self._load()
        return self.chat

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModelForImageTextToText, AutoProcessor

        def attempt(local_files_only: bool) -> tuple[Any, Any]:
            processor = AutoProcessor.from_pretrained(  # type: ignore[no-untyped-call]
                self.location.source, local_files_only=local_files_only
            )
            model = AutoModelForImageTextToText.from_pretrained(
                self.location.source, local_files_only=local_files_only
            )
            return processor, model

        self._processor, model = self.location.load(attempt)  # ModelLoadError explains
        self.device = resolve_device(self._device_request)
        self._model = model.to(self.device).eval()
        self.chat = bool(getattr(self._processor, "chat_template", None))

    def _inputs(self, requests: Sequence[CaptionRequest]) -> Any:
        images = [r.image.convert("RGB") for r in requests]
        if not self.chat:
            return self._processor(images=images, return_tensors="pt")
        texts = [
            self._processor.apply_chat_template(
                [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": r.prompt}],
                    }
                ],
                add_generation_prompt=True,
            )
            for r in requests
        ]
        return self._processor(
            images=[[im] for im in images], text=texts, return_tensors="pt", padding=True
        )

    def _generate(self, requests: Sequence[CaptionRequest]) -> list[str]:
        import torch

        inputs = self._inputs(requests).to(self.device)
        with torch.inference_mode():
            out = self._model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
            )
        if self.chat and "input_ids" in inputs:
            out = out[:, inputs["input_ids"].shape[1] :]
        decoded: list[str] = self._processor.batch_decode(out, skip_special_tokens=True)
        return decoded

    def caption(self, requests: Sequence[CaptionRequest]) -> list[str | CaptionBackendError]:
        if not requests:
            return []
        self._load()
        try:
            texts = self._generate(requests)
        except (RuntimeError, ValueError, TypeError) as exc:
            if len(requests) == 1:
                return [CaptionBackendError(requests[0].name, "model_error", str(exc)[:300])]
            # one bad picture must not fail its batch: retry one by one
            return [r for req in requests for r in self.caption([req])]
        return [clean_caption(r.name, t) for r, t in zip(requests, texts, strict=True)]


def create(arg: str, settings: Settings) -> HfCaptionModel:
    return HfCaptionModel(arg, settings)

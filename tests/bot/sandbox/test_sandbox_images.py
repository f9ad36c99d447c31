"""Image inputs: counted as quotabot counts them (bot.images), refused as OpenAI refuses them."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image as PILImage

CHAT = "/chat/completions"


def data_url(width: int, height: int, fmt: str = "PNG") -> str:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (1, 2, 3)).save(out, format=fmt)
    kind = fmt.lower()
    return f"data:image/{kind};base64,{base64.b64encode(out.getvalue()).decode()}"


def asking(url: str, detail: str | None = None) -> list[dict[str, Any]]:
    image: dict[str, Any] = {"url": url} | ({"detail": detail} if detail else {})
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what?"},
                {"type": "image_url", "image_url": image},
            ],
        }
    ]


async def test_an_images_tokens_are_in_prompt_tokens_by_its_detail(serve: Any) -> None:
    _, client = await serve()
    text = await client.post(
        CHAT, json={"model": "gpt-4o", "messages": [{"role": "user", "content": "what?"}]}
    )
    base = text.json()["usage"]["prompt_tokens"]
    for detail, extra in (("high", 1105), ("auto", 1105), ("low", 85)):
        r = await client.post(
            CHAT, json={"model": "gpt-4o", "messages": asking(data_url(2048, 4096), detail)}
        )
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] == base + extra
    r = await client.post(
        CHAT, json={"model": "gpt-4.1-mini", "messages": asking(data_url(64, 64))}
    )
    assert r.json()["usage"]["prompt_tokens"] == base + 7  # 4 patches x 1.62, rounded up


async def test_a_model_that_cannot_see_refuses_an_image_as_openai_does(serve: Any) -> None:
    sandbox, client = await serve()
    r = await client.post(CHAT, json={"model": "gpt-3.5-turbo", "messages": asking(data_url(8, 8))})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "image_url is only supported by certain models" in error["message"]
    assert sandbox.stats.total.requests == 0


async def test_links_and_broken_images_are_refused(serve: Any) -> None:
    _, client = await serve()
    link = await client.post(
        CHAT, json={"model": "gpt-4o", "messages": asking("https://example.com/cat.png")}
    )
    assert (link.status_code, link.json()["error"]["code"]) == (400, "invalid_image_url")
    junk = "data:image/png;base64," + base64.b64encode(b"not a picture").decode()
    broken = await client.post(CHAT, json={"model": "gpt-4o", "messages": asking(junk)})
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "invalid_image_format")

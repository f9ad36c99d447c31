"""Image tokens as OpenAI's "Images and vision" guide counts them, on its worked examples, and
the files refused before a model sees them."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from PIL import Image as PILImage

from bot import images
from bot.catalog import Catalog, ModelOverride
from bot.errors import ImageTooLarge, ImageUnsupported
from bot.models import Message

CATALOG = Catalog.build(tier="paid")


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    PILImage.new("RGB", (width, height), (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(
    ("size", "detail", "expected"),
    [
        ((1024, 1024), "high", 765),  # 768x768: 4 tiles
        ((2048, 4096), "high", 1105),  # 1024x2048 -> 768x1536: 6 tiles
        ((4096, 8192), "low", 85),
        ((1024, 1024), "low", 85),
        ((512, 512), "high", 255),  # small images are not scaled up: 1 tile
    ],
)
def test_tile_models_count_as_openais_worked_examples(
    size: tuple[int, int], detail: str, expected: int
) -> None:
    for name in ("gpt-4o", "gpt-4.1", "gpt-5", "o3"):
        assert images.tokens(CATALOG.get(name), *size, detail) == expected  # type: ignore[arg-type]


def test_gpt_4o_mini_counts_its_own_much_larger_tiles() -> None:
    mini = CATALOG.get("gpt-4o-mini")
    assert images.tokens(mini, 1024, 1024) == 2833 + 4 * 5667
    assert images.tokens(mini, 1024, 1024, "low") == 2833


def test_patch_models_count_32px_patches_times_their_multiplier() -> None:
    assert images.patches(1024, 1024) == 1024
    assert images.patches(1800, 2400) == 1452  # scaled down to 1056x1408: 33 x 44
    assert images.patches(10_000, 10_000) <= images.MAX_PATCHES
    assert images.tokens(CATALOG.get("gpt-4.1-mini"), 1024, 1024) == 1659  # 1024 x 1.62
    assert images.tokens(CATALOG.get("gpt-4.1-nano"), 1800, 2400) == 3572  # 1452 x 2.46
    assert images.tokens(CATALOG.get("o4-mini"), 1024, 1024) == 1762  # 1024 x 1.72
    # Detail changes nothing for these models.
    assert images.tokens(CATALOG.get("gpt-5-mini"), 1024, 1024, "low") == 1659


def test_the_catalog_says_which_models_see_images_and_the_config_can_change_it() -> None:
    vision = CATALOG.vision_models()
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-5", "o3", "o4-mini"} <= set(vision)
    assert not {"gpt-3.5-turbo", "gpt-4", "babbage-002", "whisper-1"} & set(vision)
    own = Catalog.build(
        overrides={
            "llava": ModelOverride(vision=True, image_patch_multiplier=Decimal("2")),
            "gpt-4o": ModelOverride(vision=False),
            "pixtral": ModelOverride(vision=True, image_base_tokens=10, image_tile_tokens=20),
        }
    )
    assert own.get("llava").vision and images.tokens(own.get("llava"), 64, 64) == 8
    assert not own.get("gpt-4o").vision
    assert images.tokens(own.get("pixtral"), 1024, 1024) == 10 + 4 * 20
    # A snapshot of a vision model sees images too.
    assert CATALOG.get("gpt-4o-2024-08-06").vision


def test_message_tokens_add_up_every_image() -> None:
    img = images.read("a.png", png(1024, 1024))
    msgs = [Message("user", "look", images=(img, img)), Message("user", "and this", images=(img,))]
    assert images.message_tokens(CATALOG.get("gpt-4o"), msgs) == 3 * 765


def test_an_image_is_read_from_its_bytes_not_its_name() -> None:
    img = images.read("photo.png", png(300, 200, "JPEG"))
    assert (img.media_type, img.width, img.height) == ("image/jpeg", 300, 200)
    assert img.data_url.startswith("data:image/jpeg;base64,/9j/")
    part = Message("user", "what is it?", images=(img,)).to_openai()
    assert part["content"] == [
        {"type": "text", "text": "what is it?"},
        {"type": "image_url", "image_url": {"url": img.data_url, "detail": "high"}},
    ]


def test_files_that_are_not_images_the_model_reads_are_refused() -> None:
    with pytest.raises(ImageUnsupported, match="not an image the model can read"):
        images.read("notes.png", b"not an image at all")
    with pytest.raises(ImageUnsupported):
        images.read("scan.tiff", png(10, 10, "TIFF"))
    with pytest.raises(ImageTooLarge, match=r"up to 20\.0 MB"):
        images.check(
            images.ImageFile(name="big.png", media_type="image/png", size=21 << 20, fetch=_never)
        )
    with pytest.raises(ImageUnsupported):
        images.check(
            images.ImageFile(name="x.svg", media_type="image/svg+xml", size=10, fetch=_never)
        )


async def _never(into: object) -> None:
    raise AssertionError("a refused file is never fetched")

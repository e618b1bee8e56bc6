from pathlib import Path

import pytest
import torch

from stylist.image import load_tensor, resize_long_side

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONTENT = EXAMPLES / "content" / "kodak_lighthouse_coast.jpg"
STYLE = EXAMPLES / "style" / "starry_night.jpg"


@pytest.fixture(scope="session")
def content_path() -> Path:
    return CONTENT


@pytest.fixture(scope="session")
def style_path() -> Path:
    return STYLE


@pytest.fixture(scope="session")
def content64() -> torch.Tensor:
    return resize_long_side(load_tensor(CONTENT), 64)


@pytest.fixture(scope="session")
def style64() -> torch.Tensor:
    return resize_long_side(load_tensor(STYLE), 64)

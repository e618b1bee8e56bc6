"""Make the two region masks of examples/content/kodak_lighthouse_coast.jpg.

sky.png is white over the sky and black elsewhere; land_and_sea.png is its complement. The
sky is taken as the blue pixels above the horizon, with the clouds it encloses filled in;
the edges are softened by a small blur, so they blend two styles over a few pixels.

    python examples/masks/make_lighthouse_masks.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).parent
PHOTO = HERE.parent / "content" / "kodak_lighthouse_coast.jpg"
HORIZON = 0.565  # the sea's horizon, as a fraction of the height from the top


def sky_mask(photo: Image.Image) -> Image.Image:
    rgb = np.asarray(photo.convert("RGB"), dtype=float)
    h, w = rgb.shape[:2]
    blue = (rgb[..., 2] - rgb[..., 0]) > 20  # sky and sea are clearly bluer than red
    blue[int(HORIZON * h) :] = False  # below the horizon it is sea, not sky
    mask = Image.fromarray((blue * 255).astype(np.uint8)).filter(ImageFilter.MedianFilter(5))
    # Everything not blue that touches the bottom edge is land; what is left (clouds) is sky.
    ImageDraw.floodfill(mask, (w // 2, h - 1), 128)
    arr = np.asarray(mask).copy()
    arr = np.where(arr == 128, 0, 255).astype(np.uint8)
    mask = Image.fromarray(arr).filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    return mask.filter(ImageFilter.GaussianBlur(2))


if __name__ == "__main__":
    sky = sky_mask(Image.open(PHOTO))
    sky.save(HERE / "sky.png")
    Image.eval(sky, lambda v: 255 - v).save(HERE / "land_and_sea.png")

"""Make an AdaIN decoder file from the shipped WCT relu4_1 decoder (the start of the AdaIN retraining).

    python docs/models/adain_from_wct.py OUT.safetensors

Both decoders mirror VGG-19 from relu4_1 with the same layers and read the same scaled features
(stylist.decoders), so the WCT level's weights load into an AdaIN decoder as they are. The result
reconstructs a photo from its own features (--alpha 0) as well as that level does (21 dB) and keeps
the subject at alpha 1, but it was never trained on AdaIN's targets: docs/models/retrain_adain_cpu.sh
fine-tunes it.
"""

from __future__ import annotations

import argparse

from safetensors.torch import save_file

from stylist.decoders import ADAIN_LEVEL, Decoder, decoder_file, load_decoder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the AdaIN decoder file to write")
    args = p.parse_args()
    wct = load_decoder("wct")[ADAIN_LEVEL]
    decoder = Decoder(ADAIN_LEVEL, wct.width_cap)
    decoder.load_state_dict(wct.state_dict())
    tensors, meta = decoder_file(decoder, {"made_from": f"the shipped WCT decoders' {ADAIN_LEVEL} level"})
    save_file(tensors, args.out, meta)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""``glocal-codec clc build-dictionary``: the clc sub-app (mounted by :mod:`.app`).

A user dictionary (medical, satellite, ... pictures) is built with the installed clc weights'
analysis transform and used with ``glocal-codec encode -c clc --dictionary FILE`` (and the same
``--dictionary`` to decode those files).
"""

from __future__ import annotations

from pathlib import Path
import typer
from rich.markup import escape

from .common import EXPECTED as _EXPECTED
from .common import err, out, print_json
from .common import fail as _fail
from .progress import Reporter

__all__ = ["clc_app"]

clc_app = typer.Typer(add_completion=False, no_args_is_help=True,
                      help="clc (conditional latent coding): reference dictionaries.")


@clc_app.command("build-dictionary")
def build_dictionary_cmd(
    folder: Path = typer.Argument(..., help="a folder of images (searched recursively)"),
    output: Path = typer.Option(..., "-o", "--output", help="the dictionary file to write (e.g. my.dict)"),
    entries: int = typer.Option(128, "--entries", "-k", min=1, help="representatives kept (k-means clusters)"),
    max_side: int = typer.Option(768, "--max-side", min=64, help="images are shrunk to this longer side first"),
    seed: int = typer.Option(0, help="k-means seed"),
    force: bool = typer.Option(False, "--force", "-f", help="overwrite an existing output"),
    json_out: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Build a clc reference dictionary from a folder of images.

    \b
    glocal-codec clc build-dictionary my_corpus/ -o my.dict
    glocal-codec encode photo.png -c clc --dictionary my.dict -o p.glc
    glocal-codec decode p.glc --dictionary my.dict -o p.png
    """
    try:
        from ..codecs import open_codec
        from ..codecs.clc import MAX_ENTRIES, build_dictionary, save_dictionary
        from ..train.data import find_images

        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder: {folder}")
        if output.exists() and not force:
            raise FileExistsError(f"{output} exists (use --force to overwrite)")
        if entries > MAX_ENTRIES:
            raise ValueError(f"--entries must be at most {MAX_ENTRIES}")
        images = find_images(folder)
        if not images:
            raise ValueError(f"no images found in {folder}")
        codec = open_codec("clc")
        model = codec.model
        with Reporter(err, quiet=json_out) as rep:
            rep.stage(f"reading {len(images)} images")
            features, tokens = build_dictionary(model.g_a, images, entries=entries, grid=model.cfg.grid,
                                                max_side=max_side, seed=seed, progress=rep)
        digest = save_dictionary(output, features, tokens, model=codec.weights_digest(codec.default_quality).hex(),
                                 images=len(images))
    except _EXPECTED as e:
        _fail(e)
    result = {"output": str(output), "entries": int(features.shape[0]), "images": len(images),
              "tokens_per_entry": int(tokens.shape[1]), "digest": digest.hex(), "bytes": output.stat().st_size}
    if json_out:
        print_json(result)
    else:
        out.print(escape(f"{output}: {result['entries']} entries from {len(images)} images, digest {digest.hex()} "
                         f"({result['bytes']:,} bytes)"), highlight=False, soft_wrap=True)

"""The block registry. Importing this package registers every block (one file each).

Adding a block: a new module here with a `BlockConfig` subclass decorated by
`@BLOCKS.register("name")`, imported below; the spec union, JSON Schema and tests pick it up.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from kbuild.blocks import cnn, recurrent, transformer, transformer_decoder  # noqa: F401  (registration side effect)
from kbuild.blocks.base import BLOCKS, BlockConfig, BlockDecoder, BuildContext

BlockSpec = Annotated[Union[tuple(cls for _, cls in BLOCKS.items())], Field(discriminator="type")]  # noqa: UP007

__all__ = ["BLOCKS", "BlockConfig", "BlockDecoder", "BlockSpec", "BuildContext"]

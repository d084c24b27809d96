"""Errors of fb-deploy: each message is one line naming the layer, node or file and what was expected."""


class DeployError(ValueError):
    """Base class: bad input for integerization, export or verification."""


class IntegerizationError(DeployError):
    """A network that cannot be integerized for DORY (unsupported op or width, unpackable channels)."""


class OverflowProofError(IntegerizationError):
    """The bit widths cannot rule out an overflow of the accumulator or of ``acc * mul + add``."""

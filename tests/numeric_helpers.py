"""Numerical comparisons the tests share: against the output's scale, so that they hold on every
CPU (the accumulation order of float32 sums differs between instruction sets)."""
import torch


def assert_close_to_scale(actual: torch.Tensor, expected: torch.Tensor,
                          rel: float = 1e-5) -> None:
    """``actual`` equals ``expected`` within ``rel`` of ``expected``'s largest magnitude.

    Random weights make outputs grow to anywhere between 1 and 1e5 through deep residual stacks,
    so a fixed absolute tolerance passes or fails with the CPU; one relative to the scale does
    not.
    """
    torch.testing.assert_close(actual, expected, rtol=0,
                               atol=rel * float(expected.abs().max()))

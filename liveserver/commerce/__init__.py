"""Commerce: product cards, flash sales, orders, coupons, lotteries, polls."""

from __future__ import annotations

from ..services import Services


def install(services: Services) -> None:
    """Register commerce op handlers and state sources on a node."""

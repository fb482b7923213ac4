"""What cost showback prices with: the hourly price per GPU model, and how far apart the
utilization history's samples are (the idle time of a GPU is counted in them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from backend.fleet.objects import normalized_model
from backend.settings import Settings


@dataclass(frozen=True)
class CostBasis:
    """Prices keyed by normalized model name; ``sample_seconds`` is the telemetry round."""

    prices: Mapping[str, float] = field(default_factory=dict)
    sample_seconds: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> CostBasis:
        return cls.priced(settings.gpu_prices, settings.scrape_interval)

    @classmethod
    def priced(cls, prices: Mapping[str, float], sample_seconds: float = 15.0) -> CostBasis:
        """Prices as an operator names the models (any spelling of the product name)."""
        return cls({normalized_model(m): p for m, p in prices.items()}, sample_seconds)

    def price(self, gpu_model: str) -> float | None:
        """The hourly price of one GPU of this model; None when the settings name none (the
        cost is then unknown, never 0)."""
        return self.prices.get(normalized_model(gpu_model))

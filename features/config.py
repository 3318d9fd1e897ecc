"""Configuration of the features flow: windows, watermarks, horizons, state bounds."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from features.spec import DEFAULT_HORIZONS, FeatureSpec, Horizon, Priors


@dataclass(frozen=True)
class FeaturesConfig:
    """Everything that decides what the features flow computes (times in milliseconds).

    Watermarks are per input partition: ``max event time seen - allowed_lateness_ms``;
    after ``idle_timeout_ms`` of wall time without events the watermark also advances with
    the wall clock, so windows of an idle stream still close.
    """

    window_ms: int = 60_000  # tumbling window of the user/item statistics, and the tile size
    allowed_lateness_ms: int = 5_000  # events up to this far behind the newest are still counted
    idle_timeout_ms: int = 10_000  # wall time without events before the watermark follows the clock
    item_delay_ms: int = 6_000  # item features cover closed windows ending >= this before the event
    dedup_horizon_ms: int = 300_000  # event ids are remembered this long (event time)
    max_future_ms: int = 3_600_000  # events further than this ahead of the wall clock are refused
    label_horizon_ms: int = 1_800_000  # backfill: follow-ups within this of their view are labels
    item_shards: int = 8  # keys of the item stage (state is sharded, not keyed per item)
    recent_items: int = 20  # items in a user's history as of each view (features/user_history.py)
    purchase_window_ms: int = 86_400_000  # slates leave out what the user bought this recently
    horizons: tuple[Horizon, ...] = DEFAULT_HORIZONS
    priors: Priors = field(default_factory=Priors)

    def __post_init__(self) -> None:
        positive = ("window_ms", "idle_timeout_ms", "dedup_horizon_ms", "max_future_ms", "label_horizon_ms",
                    "purchase_window_ms")
        for name in positive:
            if getattr(self, name) <= 0:
                msg = f"FeaturesConfig.{name} must be > 0, got {getattr(self, name)}"
                raise ValueError(msg)
        if self.allowed_lateness_ms < 0:
            msg = f"FeaturesConfig.allowed_lateness_ms must be >= 0, got {self.allowed_lateness_ms}"
            raise ValueError(msg)
        if self.item_delay_ms < self.allowed_lateness_ms:
            msg = (
                f"FeaturesConfig.item_delay_ms ({self.item_delay_ms}) must be >= allowed_lateness_ms "
                f"({self.allowed_lateness_ms}): item windows are final only after the lateness has passed"
            )
            raise ValueError(msg)
        if self.recent_items < 1:
            msg = f"FeaturesConfig.recent_items must be >= 1, got {self.recent_items}"
            raise ValueError(msg)
        if self.item_shards < 1:
            msg = f"FeaturesConfig.item_shards must be >= 1, got {self.item_shards}"
            raise ValueError(msg)
        if not self.horizons:
            msg = "FeaturesConfig.horizons must not be empty"
            raise ValueError(msg)
        for h in self.horizons:
            if h.hop_ms % self.window_ms or h.length_ms % h.hop_ms or h.hop_ms <= 0:
                msg = (
                    f"horizon {h.name!r}: hop_ms ({h.hop_ms}) must be a multiple of window_ms ({self.window_ms}) "
                    f"and length_ms ({h.length_ms}) a multiple of hop_ms"
                )
                raise ValueError(msg)
            if (h.hop_ms < 3_600_000 and 3_600_000 % h.hop_ms) or (h.hop_ms >= 3_600_000 and h.hop_ms % 3_600_000):
                msg = f"horizon {h.name!r}: hop_ms ({h.hop_ms}) must divide an hour or be a multiple of one"
                raise ValueError(msg)
            if h.length_ms <= self.allowed_lateness_ms + h.hop_ms + self.window_ms:
                msg = f"horizon {h.name!r}: length_ms ({h.length_ms}) must exceed allowed_lateness_ms + hop_ms + window_ms"
                raise ValueError(msg)
        if 3_600_000 % self.window_ms:
            msg = f"FeaturesConfig.window_ms ({self.window_ms}) must divide one hour (tiles fold into hours)"
            raise ValueError(msg)

    def require_same(self, found: FeaturesConfig) -> None:
        """Raise naming the differing settings when ``found`` (e.g. restored state) differs.

        >>> FeaturesConfig().require_same(FeaturesConfig(window_ms=30_000))
        Traceback (most recent call last):
        ...
        RuntimeError: the recovery state was written with other feature settings (window_ms); start with a fresh recovery directory (python -m bytewax.recovery DIR 1)
        """
        if found == self:
            return
        diffs = [f.name for f in fields(self) if getattr(found, f.name) != getattr(self, f.name)]
        msg = (
            f"the recovery state was written with other feature settings ({', '.join(diffs)}); "
            "start with a fresh recovery directory (python -m bytewax.recovery DIR 1)"
        )
        raise RuntimeError(msg)

    @property
    def spec(self) -> FeatureSpec:
        """The feature layout this configuration produces (stored in model artifacts)."""
        return FeatureSpec(
            horizons=self.horizons, window_ms=self.window_ms, item_delay_ms=self.item_delay_ms, priors=self.priors
        )

    @property
    def retention_ms(self) -> int:
        """How long after its last event an entity's state can still matter."""
        return max(h.length_ms + h.hop_ms for h in self.horizons) + self.allowed_lateness_ms + 3_600_000

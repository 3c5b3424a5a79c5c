"""Which codec and promise each series of a study gets: from ``--mode`` or from a profile.

A plan is decided before any pixel is coded, so a bad option or an unimplemented profile fails
before the study is read. With ``--profile NAME`` every series gets that profile; with
``--profile auto`` each series gets the profile its Series Description selects
(:func:`fedcodec.shared.profiles.profile_for_series`). Codec specs always come from
``default_codec_spec`` (passed in, so this module never names a codec).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.profiles import AUTO, DEFAULT_RULES, Profile, ProfileRules, profile_for_series

MODE_RANK = {"lossless": 0, "near-lossless": 1, "lossy": 2}
"""Least faithful last: the study-level coding summarises the series conservatively."""


@dataclass(frozen=True)
class SeriesPlan:
    """How one series will be coded and what must be verified before it is kept."""

    spec: str
    mode: str
    tau: int = 0
    quality: int | None = None
    profile: Profile | None = None

    @property
    def faithfulness_key(self) -> tuple[int, int]:
        """Larger = further from the original (lossy > near-lossless with larger tau > exact)."""
        return MODE_RANK[self.mode], self.tau


SpecChooser = Callable[..., str]
"""``default_codec_spec(mode, tau=0, quality=None, *, ratio=None) -> spec``."""


def plan_for_profile(profile: Profile, choose_spec: SpecChooser) -> SeriesPlan:
    profile.require_implemented()
    spec = choose_spec(profile.mode, profile.tau, None, ratio=profile.ratio)
    return SeriesPlan(spec, profile.mode, profile.tau, None, profile)


@dataclass(frozen=True)
class StudyPlanner:
    """Turns the compress options into a plan per series description."""

    choose_spec: SpecChooser
    profile: str | None = None
    rules: ProfileRules = DEFAULT_RULES
    fixed: SeriesPlan | None = None
    """The plan every series gets (``--mode``, or a named profile); None for ``auto``."""

    @classmethod
    def from_options(
        cls,
        choose_spec: SpecChooser,
        *,
        mode: str | None,
        tau: int,
        quality: int | None,
        codec: str | None,
        profile: str | None,
        rules: ProfileRules | None,
    ) -> StudyPlanner:
        rules = rules or DEFAULT_RULES
        if profile is None:
            mode = mode or "lossless"
            spec = codec if codec is not None else choose_spec(mode, tau, quality)
            stored_quality = quality if codec is None and mode == "lossy" else None
            return cls(choose_spec, None, rules, SeriesPlan(spec, mode, tau, stored_quality))
        given = [
            flag
            for flag, value in (
                ("--mode", mode), ("--tau", tau or None), ("--quality", quality), ("--codec", codec)
            )
            if value is not None
        ]
        if given:
            raise FedcodecError(
                f"--profile chooses the mode and codec; drop {', '.join(given)} "
                "(or drop --profile)"
            )
        if profile == AUTO:
            return cls(choose_spec, AUTO, rules, None)
        return cls(choose_spec, profile, rules, plan_for_profile(rules.get(profile), choose_spec))

    def plan(self, series_description: str) -> SeriesPlan:
        if self.fixed is not None:
            return self.fixed
        profile = profile_for_series(series_description, self.rules)
        return plan_for_profile(profile, self.choose_spec)


def study_plan(plans: Sequence[SeriesPlan]) -> SeriesPlan:
    """The study-level coding: the least faithful series' (first of equals).

    A reader that looks only at the top of the header then never believes a study more exact
    than its worst series; series that differ carry their own coding in the container.
    """
    if not plans:
        raise ValueError("a study plan needs at least one series")
    worst = max(p.faithfulness_key for p in plans)
    return next(p for p in plans if p.faithfulness_key == worst)

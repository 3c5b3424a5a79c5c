"""Which codec and promise each series of a study gets: from ``--mode`` or from a profile.

A plan is decided before any pixel is coded, so a bad option or an unimplemented profile fails
before the study is read. With ``--profile NAME`` every series gets that profile; with
``--profile auto`` each series gets the profile its description and kept attributes select
(:func:`fedcodec.shared.profiles.profile_for_series`). Codec specs always come from
``default_codec_spec`` (passed in, so this module never names a codec); an ROI profile
(``roi_tau`` set) takes its spec from ``roi_codec_spec`` (also passed in) and needs a region of
interest with the request (``--roi-box`` / ``--roi-mask``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fedcodec.shared.errors import FedcodecError
from fedcodec.shared.profiles import (
    AUTO,
    DEFAULT_RULES,
    Profile,
    ProfileRules,
    SeriesFacts,
    profile_for_series,
)

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
    roi_tau: int | None = None
    """ROI coding: the bound inside the region (the series is ``lossy`` outside it)."""

    @property
    def faithfulness_key(self) -> tuple[int, int]:
        """Larger = further from the original (lossy > near-lossless with larger tau > exact)."""
        return MODE_RANK[self.mode], self.tau


SpecChooser = Callable[..., str]
"""``default_codec_spec(mode, tau=0, quality=None, *, ratio=None) -> spec``."""
RoiSpecChooser = Callable[[int], str]
"""``roi_codec_spec(roi_tau) -> spec``."""
NO_REGION = ("profile {name!r} codes a region of interest: give --roi-box x0,y0,x1,y1[,z0,z1] "
             "or --roi-mask FILE")


def plan_for_profile(profile: Profile, choose_spec: SpecChooser,
                     choose_roi_spec: RoiSpecChooser | None = None,
                     has_region: bool = True) -> SeriesPlan:
    profile.require_implemented()
    if profile.roi_tau is not None:
        if not has_region:
            raise FedcodecError(NO_REGION.format(name=profile.name))
        if choose_roi_spec is None:
            raise FedcodecError(f"profile {profile.name!r}: no ROI codec available here")
        return SeriesPlan(choose_roi_spec(profile.roi_tau), profile.mode, 0, None, profile,
                          roi_tau=profile.roi_tau)
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
    choose_roi_spec: RoiSpecChooser | None = None
    has_region: bool = False
    """A region of interest came with the request (for ROI profiles)."""

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
        choose_roi_spec: RoiSpecChooser | None = None,
        has_region: bool = False,
    ) -> StudyPlanner:
        rules = rules or DEFAULT_RULES
        if has_region and profile is None:
            raise FedcodecError("--roi-box/--roi-mask need an ROI profile: --profile roi (or "
                                "auto with rules that pick one)")
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
            return cls(choose_spec, AUTO, rules, None, choose_roi_spec, has_region)
        fixed = plan_for_profile(rules.get(profile), choose_spec, choose_roi_spec, has_region)
        if has_region and fixed.roi_tau is None:
            raise FedcodecError(f"--roi-box/--roi-mask need an ROI profile; {profile!r} codes "
                                "whole slices (use --profile roi)")
        return cls(choose_spec, profile, rules, fixed, choose_roi_spec, has_region)

    def plan(self, series: SeriesFacts | str) -> SeriesPlan:
        """The plan of one series (its facts, or only its description, for ``auto``)."""
        if self.fixed is not None:
            return self.fixed
        profile = profile_for_series(series, self.rules)
        return plan_for_profile(profile, self.choose_spec, self.choose_roi_spec,
                                self.has_region)


def study_plan(plans: Sequence[SeriesPlan]) -> SeriesPlan:
    """The study-level coding: the least faithful series' (first of equals).

    A reader that looks only at the top of the header then never believes a study more exact
    than its worst series; series that differ carry their own coding in the container.
    """
    if not plans:
        raise ValueError("a study plan needs at least one series")
    worst = max(p.faithfulness_key for p in plans)
    return next(p for p in plans if p.faithfulness_key == worst)

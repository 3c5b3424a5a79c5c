"""Named, task-based compression profiles and the rules that pick one per series.

Why profiles: a radiologist does not think in codec parameters but in tasks. An archive copy
must be exact; a diagnostic read tolerates a bounded error τ (near-lossless, checked on every
pixel); a screening or teleradiology preview only needs to look right at a target ratio; a
localizer is never read for diagnosis. A profile names one such task and says which *mode*
serves it (lossless / near-lossless with τ / lossy at a target ratio). It deliberately names no
codec: the client turns a profile into a codec spec through ``default_codec_spec`` (the one
place where the default codec, classical today and neural later, is chosen).

``auto`` picks a profile per series with :class:`ProfileRules`: ordered rules, first match
wins, else the rule set's default. A rule (:mod:`fedcodec.shared.profile_rule`) tests the Series
Description and/or attributes de-identification keeps (Image Type, Sequence Name, Modality, ...)
and the slice count, so ``auto`` still works after ``fedcodec deid`` removed the description.
A site can edit the rules in a small TOML or JSON file (``docs/container-format.md``, section
"Compression profiles") and retune the built-in profiles' τ / ratio::

    default = "archive"

    [profiles.diagnostic]
    tau = 1

    [[rule]]
    match = "localizer|scout"
    profile = "preview"

    [[rule]]
    attributes = { ImageType = "^LOCALIZER$" }
    profile = "preview"

The ``roi`` profile keeps a region of interest exact (or within ``roi_tau``) and codes the rest
lossily, in one stream per slice (``neural:mode=roi``, docs/learned-lossy-codec.md). Its mode is
``lossy`` (the outside is); the region itself comes with the request (``fedcodec compress
--roi-box/--roi-mask``), so ``auto`` rules that pick ``roi`` need a region too. A profile with
``implemented=False`` is declared only: choosing it raises :class:`FedcodecError`.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fedcodec.shared.errors import FedcodecError, UnknownNameError
from fedcodec.shared.profile_rule import ProfileRule, SeriesFacts, rule_from_mapping

MODES = ("lossless", "near-lossless", "lossy")
AUTO = "auto"
"""Not a profile: the instruction to choose one per series with the rules."""
MAX_ROI_TAU = 15


@dataclass(frozen=True)
class Profile:
    """One task and the coding promise that serves it.

    ``tau`` is the near-lossless bound (max error per stored value, verified on every pixel);
    ``ratio`` the lossy target compression ratio (what the codec aims for; the achieved ratio is
    measured and reported). ``implemented`` False marks a declared, not yet available profile.
    ``roi_tau`` (0 = exact) makes it an ROI profile: that bound inside a region of interest, mode
    ``lossy`` outside (no ratio: the ROI codec's base-layer quality).
    """

    name: str
    purpose: str
    mode: str
    tau: int = 0
    ratio: float | None = None
    implemented: bool = True
    roi_tau: int | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", self.name) or self.name == AUTO:
            raise FedcodecError(
                f"invalid profile name {self.name!r}: use 1-32 lowercase letters, digits, - or _ "
                f"(and not {AUTO!r})"
            )
        if self.mode not in MODES:
            raise FedcodecError(f"profile {self.name!r}: mode must be one of {', '.join(MODES)}")
        if self.mode == "near-lossless" and not 1 <= self.tau <= 1 << 15:
            raise FedcodecError(f"profile {self.name!r}: near-lossless needs tau >= 1")
        if self.mode != "near-lossless" and self.tau != 0:
            raise FedcodecError(f"profile {self.name!r}: tau only applies to near-lossless")
        if self.roi_tau is not None:
            if self.mode != "lossy" or self.ratio is not None:
                raise FedcodecError(f"profile {self.name!r}: roi_tau needs mode lossy, no ratio "
                                    "(the outside quality is the ROI codec's)")
            if isinstance(self.roi_tau, bool) or not isinstance(self.roi_tau, int) \
                    or not 0 <= self.roi_tau <= MAX_ROI_TAU:
                raise FedcodecError(f"profile {self.name!r}: roi_tau must be 0..{MAX_ROI_TAU}")
        elif self.mode == "lossy":
            if self.ratio is None or not 1.0 < self.ratio <= 1000.0:
                raise FedcodecError(f"profile {self.name!r}: lossy needs a ratio in (1, 1000]")
        elif self.ratio is not None:
            raise FedcodecError(f"profile {self.name!r}: ratio only applies to lossy")

    def require_implemented(self) -> Profile:
        """``self``, or a one-line error if this profile is only declared."""
        if not self.implemented:
            raise FedcodecError(f"profile {self.name!r} is declared but not implemented yet")
        return self

    def describe(self) -> str:
        """``diagnostic (near-lossless, tau 2)``: for reports and DICOM Derivation Description."""
        if self.roi_tau is not None:
            inside = "lossless" if self.roi_tau == 0 else f"tau {self.roi_tau}"
            return f"{self.name} (ROI {inside}, lossy outside)"
        if self.mode == "near-lossless":
            return f"{self.name} (near-lossless, tau {self.tau})"
        if self.mode == "lossy":
            return f"{self.name} (lossy, target ratio {self.ratio:g}:1)"
        return f"{self.name} (lossless)"


BUILTIN_PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("archive", "long-term archive: every stored value exact", "lossless"),
        Profile(
            "diagnostic",
            "primary diagnostic reading: error at most tau per stored value, verified",
            "near-lossless",
            tau=2,
        ),
        Profile(
            "preview",
            "screening / teleradiology preview and localizers: lossy at a target ratio",
            "lossy",
            ratio=20.0,
        ),
        Profile(
            "roi",
            "ROI-preserving: lossless inside a region of interest (box or mask), lossy outside",
            "lossy",
            roi_tau=0,
        ),
    )
}


@dataclass(frozen=True)
class ProfileRules:
    """Ordered rules, a default, and the profiles they may name (built-ins plus site edits)."""

    rules: tuple[ProfileRule, ...]
    default: str
    profiles: dict[str, Profile]
    source: str = "built-in"
    """Where the rules came from (a file path, or ``built-in``), for reports."""

    def __post_init__(self) -> None:
        for where, name in [("default", self.default)] + [
            (f"rule {i + 1}", r.profile) for i, r in enumerate(self.rules)
        ]:
            if name not in self.profiles:
                raise UnknownNameError(
                    f"{self.source}: {where} names unknown profile {name!r}; "
                    f"known: {', '.join(sorted(self.profiles))}"
                )
            try:
                self.profiles[name].require_implemented()
            except FedcodecError as exc:
                raise FedcodecError(f"{self.source}: {where}: {exc}") from None

    def get(self, name: str) -> Profile:
        """The profile called ``name`` (implemented), or a one-line error."""
        if name not in self.profiles:
            raise UnknownNameError(
                f"unknown profile {name!r}; use one of {', '.join(sorted(self.profiles))} "
                f"or {AUTO}"
            )
        return self.profiles[name].require_implemented()


def _words(*alternatives: str) -> str:
    """A pattern matching any alternative as a whole token: ``_``, digits and punctuation
    separate tokens (``ep2d_diff_mddw``, ``dti_ax``), which ``\\b`` would not do for ``_``."""
    return rf"(?<![a-z])(?:{'|'.join(alternatives)})(?![a-z])"


DEFAULT_RULES = ProfileRules(
    rules=(
        # Planning images: never read for diagnosis. Image Type LOCALIZER (CT scouts, Enhanced
        # MR, several MR vendors) survives de-identification; the description does not.
        ProfileRule(None, "preview", attributes=(("ImageType", "^LOCALIZER$"),)),
        ProfileRule(
            _words(r"locali[sz]er", "scout", "survey", r"3[- ]?plane", "loc", r"tri[- ]?pilot",
                   "aahscout", "pilot"),
            "preview",
        ),
        # Coil-sensitivity / calibration scans (ASSET, SENSE ref...): reconstruct, not read.
        ProfileRule(
            _words("calibration", "cal", "asset", r"sense[- _]?ref", "prescan"), "preview"
        ),
        # Diffusion: noisy, quantitative maps derived later; a small verified error is harmless.
        # Kept by de-identification: Image Type DIFFUSION / ADC / TRACEW / FA (Siemens; in Image
        # Type FA is always an FA map) and Siemens diffusion sequence names (*ep_b0, *ep_b1000t).
        ProfileRule(None, "diagnostic",
                    attributes=(("ImageType", "^(?:DIFFUSION|ADC|TRACEW|FA)$"),)),
        ProfileRule(None, "diagnostic", attributes=(("SequenceName", r"ep_b\d"),)),
        # Not "FA": in descriptions it is as often a flip angle ("T1 FA 15") as an FA map.
        ProfileRule(
            _words("diffusion", "diff", "dwi", "dti", "dwi?[- _]?epi", "tensor", "adc", "trace",
                   "mddw"),
            "diagnostic",
        ),
    ),
    default="archive",
    profiles=dict(BUILTIN_PROFILES),
)
"""Conservative: anything not recognised is kept exact (archive)."""


def profile_for_series(
    series: SeriesFacts | str, rules: ProfileRules = DEFAULT_RULES
) -> Profile:
    """The profile ``auto`` gives a series (its facts, or only its description): the first
    rule it matches, else the default."""
    for rule in rules.rules:
        if rule.matches(series or ""):
            return rules.get(rule.profile)
    return rules.get(rules.default)


def get_profile(name: str, rules: ProfileRules = DEFAULT_RULES) -> Profile:
    """A profile by name (``auto`` is not one: use :func:`profile_for_series`)."""
    return rules.get(name)


def profile_names(rules: ProfileRules = DEFAULT_RULES) -> list[str]:
    return sorted(rules.profiles)


_PROFILE_KEYS = {"purpose", "mode", "tau", "ratio", "roi_tau"}
_TOP_KEYS = {"default", "rule", "rules", "profiles"}


def load_rules(path: str | Path) -> ProfileRules:
    """Read a site's rules file (``.toml`` or ``.json``, same structure); one-line errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FedcodecError(f"no such profile rules file: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FedcodecError(f"cannot read profile rules {path}: {exc}") from None
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FedcodecError(f"profile rules {path}: not valid {_kind(path)}: {reason}") from None
    return rules_from_mapping(doc, str(path))


def _kind(path: Path) -> str:
    return "JSON" if path.suffix.lower() == ".json" else "TOML"


def rules_from_mapping(doc: Any, source: str = "<rules>") -> ProfileRules:
    """Build :class:`ProfileRules` from the parsed file: built-in profiles, edited or extended by
    ``profiles``, then ``rule`` (or ``rules``) in order, then ``default`` (``archive`` if
    absent)."""
    if not isinstance(doc, dict):
        raise FedcodecError(f"{source}: the rules file must hold a table/object")
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise FedcodecError(f"{source}: unknown key {unknown[0]!r}; allowed: {sorted(_TOP_KEYS)}")
    profiles = dict(BUILTIN_PROFILES)
    edits = doc.get("profiles", {})
    if not isinstance(edits, dict):
        raise FedcodecError(f"{source}: 'profiles' must be a table of profile tables")
    for name, fields in edits.items():
        profiles[name] = _edited_profile(name, fields, profiles.get(name), source)
    raw_rules = doc.get("rule", doc.get("rules", []))
    if "rule" in doc and "rules" in doc:
        raise FedcodecError(f"{source}: use either 'rule' or 'rules', not both")
    if not isinstance(raw_rules, list):
        raise FedcodecError(f"{source}: 'rule' must be an array of tables")
    rules = tuple(rule_from_mapping(i, item, source) for i, item in enumerate(raw_rules))
    default = doc.get("default", "archive")
    if not isinstance(default, str):
        raise FedcodecError(f"{source}: 'default' must be a profile name")
    return ProfileRules(rules=rules, default=default, profiles=profiles, source=source)


def _edited_profile(name: Any, fields: Any, base: Profile | None, source: str) -> Profile:
    where = f"{source}: profiles.{name}"
    if not isinstance(fields, dict):
        raise FedcodecError(f"{where} must be a table")
    unknown = sorted(set(fields) - _PROFILE_KEYS)
    if unknown:
        raise FedcodecError(
            f"{where}: unknown key {unknown[0]!r}; allowed: {sorted(_PROFILE_KEYS)}"
        )
    if base is not None and not base.implemented:
        try:
            base.require_implemented()
        except FedcodecError as exc:
            raise FedcodecError(f"{where}: cannot be edited: {exc}") from None
    mode = fields.get("mode", base.mode if base else None)
    if mode is None:
        raise FedcodecError(f"{where}: a new profile needs a mode ({', '.join(MODES)})")
    tau = fields.get("tau", base.tau if base and mode == base.mode else 0)
    ratio = fields.get("ratio", base.ratio if base and mode == base.mode else None)
    if isinstance(tau, bool) or not isinstance(tau, int):
        raise FedcodecError(f"{where}: tau must be an integer")
    if ratio is not None and (isinstance(ratio, bool) or not isinstance(ratio, (int, float))):
        raise FedcodecError(f"{where}: ratio must be a number")
    roi_tau = fields.get("roi_tau", base.roi_tau if base and mode == base.mode else None)
    if roi_tau is not None and "ratio" not in fields:
        ratio = None
    purpose = fields.get("purpose", base.purpose if base else f"site profile {name}")
    if not isinstance(name, str) or not isinstance(purpose, str):
        raise FedcodecError(f"{where}: name and purpose must be strings")
    try:
        if base is not None:
            return replace(base, purpose=purpose, mode=mode, tau=tau,
                           ratio=None if ratio is None else float(ratio), roi_tau=roi_tau)
        return Profile(name, purpose, mode, tau, None if ratio is None else float(ratio),
                       roi_tau=roi_tau)
    except FedcodecError as exc:
        raise FedcodecError(f"{source}: {exc}") from None

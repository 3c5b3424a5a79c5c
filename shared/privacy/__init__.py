"""Differential privacy at a site: the privacy unit, the persisted accountant, budget planning."""

from fedcodec.shared.privacy.accountant import PrivacyAccountant, PrivacyBudgetExceeded
from fedcodec.shared.privacy.unit import PRIVACY_UNITS, privacy_unit

__all__ = ["PRIVACY_UNITS", "PrivacyAccountant", "PrivacyBudgetExceeded", "privacy_unit"]

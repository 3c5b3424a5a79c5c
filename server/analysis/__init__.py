"""The encrypted-inference analysis service (public CKKS context only); see docs/compressed-domain-analysis.md."""

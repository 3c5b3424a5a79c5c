"""The encrypted-inference analysis service (public CKKS contexts only).

See docs/compressed-domain-analysis.md.
"""

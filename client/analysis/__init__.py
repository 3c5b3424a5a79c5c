"""Site-side compressed-domain analysis: training/evaluation and the encrypted remote client."""

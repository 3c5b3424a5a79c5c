"""Compressed-domain analysis: classifiers on neural-codec latents and encrypted (CKKS) heads.

See docs/compressed-domain-analysis.md. Modules: :mod:`.latents` (the latent source interface),
:mod:`.dataset` (tumour slices, seeded split), :mod:`.classifier` (latent / pixel classifiers),
:mod:`.pooling` (latents -> feature vector), :mod:`.heads` (linear / polynomial heads),
:mod:`.ckks` (TenSEAL profiles and tensors), :mod:`.result_check` (authenticating encrypted
results), :mod:`.wire` (limits and the model card message).
"""

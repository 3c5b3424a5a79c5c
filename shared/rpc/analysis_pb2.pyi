from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CkksProfile(_message.Message):
    __slots__ = ("name", "poly_modulus_degree", "coeff_mod_bit_sizes", "scale_bits", "security_bits", "slots")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLY_MODULUS_DEGREE_FIELD_NUMBER: _ClassVar[int]
    COEFF_MOD_BIT_SIZES_FIELD_NUMBER: _ClassVar[int]
    SCALE_BITS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_BITS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    poly_modulus_degree: int
    coeff_mod_bit_sizes: _containers.RepeatedScalarFieldContainer[int]
    scale_bits: int
    security_bits: int
    slots: int
    def __init__(self, name: _Optional[str] = ..., poly_modulus_degree: _Optional[int] = ..., coeff_mod_bit_sizes: _Optional[_Iterable[int]] = ..., scale_bits: _Optional[int] = ..., security_bits: _Optional[int] = ..., slots: _Optional[int] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ("head",)
    HEAD_FIELD_NUMBER: _ClassVar[int]
    head: str
    def __init__(self, head: _Optional[str] = ...) -> None: ...

class ModelCard(_message.Message):
    __slots__ = ("head", "model_hash", "feature_count", "class_names", "profile", "pooling", "latent_codec", "latent_model_hash", "known_count", "known_inputs", "known_scores", "max_batch", "max_request_bytes", "studies_per_ciphertext")
    HEAD_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    FEATURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAMES_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    POOLING_FIELD_NUMBER: _ClassVar[int]
    LATENT_CODEC_FIELD_NUMBER: _ClassVar[int]
    LATENT_MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    KNOWN_COUNT_FIELD_NUMBER: _ClassVar[int]
    KNOWN_INPUTS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_SCORES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    STUDIES_PER_CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    head: str
    model_hash: str
    feature_count: int
    class_names: _containers.RepeatedScalarFieldContainer[str]
    profile: CkksProfile
    pooling: str
    latent_codec: str
    latent_model_hash: str
    known_count: int
    known_inputs: _containers.RepeatedScalarFieldContainer[float]
    known_scores: _containers.RepeatedScalarFieldContainer[float]
    max_batch: int
    max_request_bytes: int
    studies_per_ciphertext: int
    def __init__(self, head: _Optional[str] = ..., model_hash: _Optional[str] = ..., feature_count: _Optional[int] = ..., class_names: _Optional[_Iterable[str]] = ..., profile: _Optional[_Union[CkksProfile, _Mapping]] = ..., pooling: _Optional[str] = ..., latent_codec: _Optional[str] = ..., latent_model_hash: _Optional[str] = ..., known_count: _Optional[int] = ..., known_inputs: _Optional[_Iterable[float]] = ..., known_scores: _Optional[_Iterable[float]] = ..., max_batch: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., studies_per_ciphertext: _Optional[int] = ...) -> None: ...

class RegisterContextRequest(_message.Message):
    __slots__ = ("context", "head", "context_hash")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    context: bytes
    head: str
    context_hash: str
    def __init__(self, context: _Optional[bytes] = ..., head: _Optional[str] = ..., context_hash: _Optional[str] = ...) -> None: ...

class RegisterContextReply(_message.Message):
    __slots__ = ("context_hash",)
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    context_hash: str
    def __init__(self, context_hash: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("request_id", "context_hash", "head", "model_hash", "batch_size", "features")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context_hash: str
    head: str
    model_hash: str
    batch_size: int
    features: bytes
    def __init__(self, request_id: _Optional[str] = ..., context_hash: _Optional[str] = ..., head: _Optional[str] = ..., model_hash: _Optional[str] = ..., batch_size: _Optional[int] = ..., features: _Optional[bytes] = ...) -> None: ...

class EvaluateReply(_message.Message):
    __slots__ = ("request_id", "context_hash", "model_hash", "features_sha256", "batch_size", "scores", "evaluate_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_HASH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HASH_FIELD_NUMBER: _ClassVar[int]
    FEATURES_SHA256_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    EVALUATE_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    context_hash: str
    model_hash: str
    features_sha256: str
    batch_size: int
    scores: bytes
    evaluate_ms: float
    def __init__(self, request_id: _Optional[str] = ..., context_hash: _Optional[str] = ..., model_hash: _Optional[str] = ..., features_sha256: _Optional[str] = ..., batch_size: _Optional[int] = ..., scores: _Optional[bytes] = ..., evaluate_ms: _Optional[float] = ...) -> None: ...

from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Receipt(_message.Message):
    __slots__ = ("payload", "signature", "public_key")
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    payload: bytes
    signature: bytes
    public_key: bytes
    def __init__(self, payload: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., public_key: _Optional[bytes] = ...) -> None: ...

class PutMetadata(_message.Message):
    __slots__ = ("object_id", "namespace", "size", "sha256", "replace")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    namespace: str
    size: int
    sha256: bytes
    replace: bool
    def __init__(self, object_id: _Optional[str] = ..., namespace: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., replace: _Optional[bool] = ...) -> None: ...

class PutChunk(_message.Message):
    __slots__ = ("metadata", "data")
    METADATA_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    metadata: PutMetadata
    data: bytes
    def __init__(self, metadata: _Optional[_Union[PutMetadata, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ObjectInfo(_message.Message):
    __slots__ = ("owner", "object_id", "size", "sha256", "key_ids", "algorithm", "format_version", "created_unix_ms", "shared_with")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    KEY_IDS_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_FIELD_NUMBER: _ClassVar[int]
    owner: str
    object_id: str
    size: int
    sha256: bytes
    key_ids: _containers.RepeatedScalarFieldContainer[str]
    algorithm: str
    format_version: int
    created_unix_ms: int
    shared_with: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, owner: _Optional[str] = ..., object_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[bytes] = ..., key_ids: _Optional[_Iterable[str]] = ..., algorithm: _Optional[str] = ..., format_version: _Optional[int] = ..., created_unix_ms: _Optional[int] = ..., shared_with: _Optional[_Iterable[str]] = ...) -> None: ...

class PutReply(_message.Message):
    __slots__ = ("object", "receipt")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    object: ObjectInfo
    receipt: Receipt
    def __init__(self, object: _Optional[_Union[ObjectInfo, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("owner", "object_id")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    owner: str
    object_id: str
    def __init__(self, owner: _Optional[str] = ..., object_id: _Optional[str] = ...) -> None: ...

class GetChunk(_message.Message):
    __slots__ = ("info", "data")
    INFO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    info: ObjectInfo
    data: bytes
    def __init__(self, info: _Optional[_Union[ObjectInfo, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("owner", "shared_with_me", "prefix", "page_size", "page_token")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SHARED_WITH_ME_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    owner: str
    shared_with_me: bool
    prefix: str
    page_size: int
    page_token: str
    def __init__(self, owner: _Optional[str] = ..., shared_with_me: _Optional[bool] = ..., prefix: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReply(_message.Message):
    __slots__ = ("objects", "next_page_token")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[ObjectInfo]
    next_page_token: str
    def __init__(self, objects: _Optional[_Iterable[_Union[ObjectInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("object_id", "owner")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    owner: str
    def __init__(self, object_id: _Optional[str] = ..., owner: _Optional[str] = ...) -> None: ...

class DeleteReply(_message.Message):
    __slots__ = ("object", "receipt")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    object: ObjectInfo
    receipt: Receipt
    def __init__(self, object: _Optional[_Union[ObjectInfo, _Mapping]] = ..., receipt: _Optional[_Union[Receipt, _Mapping]] = ...) -> None: ...

class ShareRequest(_message.Message):
    __slots__ = ("object_id", "grantee", "revoke")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    GRANTEE_FIELD_NUMBER: _ClassVar[int]
    REVOKE_FIELD_NUMBER: _ClassVar[int]
    object_id: str
    grantee: str
    revoke: bool
    def __init__(self, object_id: _Optional[str] = ..., grantee: _Optional[str] = ..., revoke: _Optional[bool] = ...) -> None: ...

class ShareReply(_message.Message):
    __slots__ = ("object",)
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    object: ObjectInfo
    def __init__(self, object: _Optional[_Union[ObjectInfo, _Mapping]] = ...) -> None: ...

class HeadRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeadReply(_message.Message):
    __slots__ = ("seq", "entry_hash", "signature", "public_key")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ENTRY_HASH_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    seq: int
    entry_hash: str
    signature: bytes
    public_key: bytes
    def __init__(self, seq: _Optional[int] = ..., entry_hash: _Optional[str] = ..., signature: _Optional[bytes] = ..., public_key: _Optional[bytes] = ...) -> None: ...

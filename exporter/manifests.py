"""Digests as compact keys, and manifests reduced to what garbage collection needs: the digests they reference.

A digest key is the 32 raw bytes of a sha256 digest, or ``b"<alg>:"`` plus
the raw bytes for another algorithm, so keys of different algorithms never
collide and a million of them cost bytes, not strings.

``parse`` reads a manifest the way Distribution's manifest store does
(registry/storage/manifeststore.go, ``Get``) and keeps what its
``References()`` returns: config and layers of a Docker schema 2 or OCI image
manifest, the child manifests of a manifest list or OCI index, the
``fsLayers`` of a schema 1 manifest. Whatever Distribution cannot read (not
JSON, a wrong type, an unknown schema version or media type) is a
``ManifestError``: its garbage collector stops with "failed to mark" there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

SHA256_BYTES = 32
MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_MANIFESTS = ("application/vnd.docker.distribution.manifest.v2+json",
                   "application/vnd.oci.image.manifest.v1+json")
_HEX_LENGTH = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_IN_TEXT = re.compile(rb"(sha256|sha384|sha512):([0-9a-f]{64,128})")


class ManifestError(ValueError):
    """A manifest Distribution cannot read."""


def key(digest: str) -> bytes | None:
    """The key of ``alg:hex``, or None when it is not a digest (such a reference can match no blob)."""
    alg, _, hexa = digest.partition(":")
    return key_of(alg, hexa)


def key_of(alg: str, hexa: str) -> bytes | None:
    # lower-case only: the store's paths are, and Distribution compares digests as strings
    if _HEX_LENGTH.get(alg) != len(hexa) or hexa.lower() != hexa:
        return None
    try:
        raw = bytes.fromhex(hexa)
    except ValueError:
        return None
    return raw if alg == "sha256" else alg.encode() + b":" + raw


def name(k: bytes) -> str:
    """``alg:hex`` for a key."""
    if len(k) == SHA256_BYTES:
        return "sha256:" + k.hex()
    alg, _, raw = k.partition(b":")
    return f"{alg.decode()}:{raw.hex()}"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What garbage collection needs of one manifest; immutable, like the manifest."""

    size: int  # bytes of the manifest itself
    refs: bytes  # sha256 keys it references, packed 32 bytes each
    other_refs: tuple[bytes, ...] = ()  # keys of other algorithms (rare)
    damaged: bool = False  # unreadable: refs are the digests its bytes still name

    def references(self):
        """Every key this manifest references."""
        for at in range(0, len(self.refs), SHA256_BYTES):
            yield self.refs[at:at + SHA256_BYTES]
        yield from self.other_refs


def parse(content: bytes) -> Manifest:
    """The references of one manifest; ManifestError when Distribution would fail to read it."""
    try:
        doc = json.loads(content)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise ManifestError("not a JSON object")
    version, media_type = doc.get("schemaVersion"), doc.get("mediaType", "")
    if not isinstance(media_type, str):
        raise ManifestError("mediaType is not a string")
    if version == 1 and not isinstance(version, bool):
        digests = [_field(layer, "blobSum") for layer in _list(doc, "fsLayers")]
    elif version == 2 and not isinstance(version, bool):
        digests = _schema2(doc, media_type)
    else:
        raise ManifestError(f"unrecognized schema version {version!r}")
    return _packed(len(content), digests)


def salvage(content: bytes) -> Manifest:
    """A damaged manifest: every digest its bytes still name counts as referenced, so nothing it may use is counted
    as garbage."""
    digests = [f"{m.group(1).decode()}:{m.group(2).decode()}" for m in _DIGEST_IN_TEXT.finditer(content)]
    found = _packed(len(content), digests)
    return Manifest(found.size, found.refs, found.other_refs, damaged=True)


def _schema2(doc: dict, media_type: str) -> list:
    if media_type in IMAGE_MANIFESTS:
        return _image(doc)
    if media_type in (MANIFEST_LIST, OCI_INDEX):
        return _children(doc)
    if media_type == "":
        # an OCI manifest or index without mediaType: an index when it has a (non-null) manifests list
        return _children(doc) if doc.get("manifests") is not None else _image(doc)
    raise ManifestError(f"unrecognized manifest content type {media_type}")


def _image(doc: dict) -> list:
    config = doc.get("config")
    if config is not None and not isinstance(config, dict):
        raise ManifestError("config is not an object")
    return [_field(config or {}, "digest")] + [_field(layer, "digest") for layer in _list(doc, "layers")]


def _children(doc: dict) -> list:
    return [_field(child, "digest") for child in _list(doc, "manifests")]


def _list(doc: dict, field: str) -> list:
    value = doc.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ManifestError(f"{field} is not a list of objects")
    return value


def _field(obj: dict, field: str):
    value = obj.get(field, "")
    if not isinstance(value, str):
        raise ManifestError(f"{field} is not a string")
    return value


def _packed(size: int, digests: list) -> Manifest:
    sha256, other = [], []
    for digest in digests:
        k = key(digest)
        if k is None:
            continue  # "" or malformed: marks nothing that exists
        (sha256 if len(k) == SHA256_BYTES else other).append(k)
    return Manifest(size, b"".join(dict.fromkeys(sha256)), tuple(dict.fromkeys(other)))

"""The node's object store holds certificates in memory without their PEM texts and reads
one whole from disk when its files are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeplane.node.agent.objects import ObjectError, ObjectStore
from edgeplane.node.nginx.render_tls import cert_files
from edgeplane.protocol.config import CertSpec, canonical_body, object_hash


def _put(store: ObjectStore, cert: CertSpec) -> str:
    doc = cert.model_dump(mode="json")
    digest = object_hash(canonical_body(doc))
    store.put(digest, doc)
    return digest


def test_certificates_in_memory_without_pems_whole_from_disk(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    store.known()  # makes the directory, as the agent does before its first fetch
    a = CertSpec(id="a1", names=("a.test",), cert_pem="CHAIN-A\n", key_pem="KEY-A", not_after="x")
    b = CertSpec(id="b1", names=("b.test",), cert_pem="CHAIN-B\n", key_pem="KEY-B", not_after="x")
    ha, hb = _put(store, a), _put(store, b)

    slim = store.certs([ha, hb])
    assert [(c.id, c.names, c.cert_pem, c.key_pem) for c in slim] == [
        ("a1", ("a.test",), "", ""),
        ("b1", ("b.test",), "", ""),
    ]
    assert store.full_cert("b1") == b
    with pytest.raises(ValueError, match="no PEM"):  # never an empty certificate file
        cert_files(slim)
    assert cert_files([store.full_cert("a1")]) == {"a1.pem": b"KEY-A\nCHAIN-A\n"}

    store.certs([ha])  # b is no longer named: forgotten
    with pytest.raises(ObjectError):
        store.full_cert("b1")

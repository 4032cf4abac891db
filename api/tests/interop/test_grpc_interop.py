"""Interop: a Python grpcio client generated from proto/ talks to the real server.

Run by scripts/test.sh after `cargo build`; BIOMATCH_BIN points at the binary.
"""
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[3]
PROTO = ROOT / "proto"


@pytest.fixture(scope="module")
def stubs(tmp_path_factory):
    out = tmp_path_factory.mktemp("stubs")
    files = [str(p.relative_to(PROTO)) for p in sorted((PROTO / "biomatch" / "v1").glob("*.proto"))]
    inc = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(["protoc", f"-I{PROTO}", f"-I{inc}", f"--python_out={out}", f"--grpc_python_out={out}", *files])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, str(out))
    from biomatch.v1 import matcher_pb2, matcher_pb2_grpc, template_pb2  # noqa: E402

    return matcher_pb2, matcher_pb2_grpc, template_pb2


@pytest.fixture(scope="module")
def server():
    binary = os.environ.get("BIOMATCH_BIN", str(ROOT / "target" / "debug" / "biomatch"))
    data = tempfile.mkdtemp()
    port_file = Path(data) / "port"
    proc = subprocess.Popen(
        [binary, "serve", "--data-dir", str(Path(data) / "d"), "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--port-file", str(port_file)],
        env={**os.environ, "BIOMATCH_LOG": "warn", "BIOMATCH_GRPC_ANONYMOUS": "true"},
    )
    deadline = time.time() + 60
    while not (port_file.exists() and port_file.read_text()):
        assert proc.poll() is None, "server exited"
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    yield port_file.read_text()
    proc.terminate()
    proc.wait(timeout=30)


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def test_enroll_verify_identify_from_python(stubs, server):
    matcher_pb2, matcher_pb2_grpc, template_pb2 = stubs
    rng = random.Random(7)
    dim = 128
    centres = {f"py-{i}": unit([rng.gauss(0, 1) for _ in range(dim)]) for i in range(50)}

    def face(values, packed=False):
        if packed:
            import struct

            emb = template_pb2.Embedding(f32_le=struct.pack(f"<{len(values)}f", *values))
        else:
            emb = template_pb2.Embedding(floats=template_pb2.FloatList(values=values))
        return template_pb2.Template(modality=template_pb2.FACE, embedding=emb)

    def noisy(v):
        return unit([x + rng.gauss(0, 0.3 / math.sqrt(dim)) for x in v])

    with grpc.insecure_channel(server) as ch:
        stub = matcher_pb2_grpc.MatcherStub(ch)
        for i, (subject, v) in enumerate(centres.items()):
            r = stub.Enroll(matcher_pb2.EnrollRequest(subject_id=subject, record_id=f"{subject}-r", template=face(v, packed=i % 2 == 0)))
            assert r.record_id == f"{subject}-r"
            assert r.gallery == "face-128"

        probe = noisy(centres["py-3"])
        g = stub.Verify(matcher_pb2.VerifyRequest(probe=face(probe), subject_id="py-3"))
        assert g.match and g.score > 0.8, g
        i = stub.Verify(matcher_pb2.VerifyRequest(probe=face(probe), subject_id="py-4"))
        assert not i.match and i.score < 0.4, i

        r = stub.Identify(matcher_pb2.IdentifyRequest(probe=face(probe), top_k=3))
        assert [c.rank for c in r.candidates] == [1, 2, 3]
        assert r.candidates[0].subject_id == "py-3"
        assert r.gallery_size == 50

        with pytest.raises(grpc.RpcError) as err:
            stub.Identify(matcher_pb2.IdentifyRequest(probe=face([0.0] * dim), top_k=3))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "zero vector" in err.value.details()

"""A verifier of Portcullis's decision log written from docs/audit.md alone, without the Rust
code: it checks a decision proof and an audit export (hashes, chain, RFC 9162 inclusion and
roots, Ed25519 checkpoint signatures and their chain). It does not replay decisions (that needs
the transition rules); `portcullis audit verify` does.

usage: independent_verify.py PUBLIC_KEY.pem proof.json export.jsonl
Exit 0 when both verify; 1 with the reason otherwise.
"""

import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def leaf(event_hash):
    return sha256(b"\x00", event_hash)


def node(left, right):
    return sha256(b"\x01", left, right)


def root(leaves):
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(root(leaves[:k]), root(leaves[k:]))


def verify_inclusion(index, size, leaf_hash, path, expected):
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected


def check_signature(key, key_id, signed):
    cp = signed["checkpoint"]
    if cp["key_id"] != key_id:
        raise SystemExit(f"checkpoint {cp['index']} names key {cp['key_id']}, not {key_id}")
    key.verify(bytes.fromhex(signed["signature"]), canonical(cp))


def verify_proof(key, key_id, proof):
    check_signature(key, key_id, proof["checkpoint"])
    cp = proof["checkpoint"]["checkpoint"]
    expected = bytes.fromhex(cp["root"])
    for e in proof["events"]:
        h = sha256(bytes.fromhex(e["previous_hash"]), e["event"].encode())
        if h.hex() != e["hash"]:
            raise SystemExit(f"proof: event {e['seq']} does not hash to its hash")
        path = [bytes.fromhex(p) for p in e["inclusion"]]
        if not verify_inclusion(e["seq"] - 1, cp["tree_size"], leaf(h), path, expected):
            raise SystemExit(f"proof: event {e['seq']} is not in checkpoint {cp['index']}")
        if json.loads(e["event"])["decision_id"] != proof["decision_id"]:
            raise SystemExit(f"proof: event {e['seq']} is another decision's")
    if proof["decision"]["id"] != proof["decision_id"]:
        raise SystemExit("proof: the stored decision is another one")
    print(f"proof: {len(proof['events'])} events of {proof['decision_id']} in checkpoint {cp['index']}")


def verify_export(key, key_id, lines):
    hashes, checkpoints, previous_cp = [], 0, None
    for line in lines:
        record = json.loads(line)
        kind = record["record"]
        if kind == "event":
            if record["seq"] != len(hashes) + 1:
                raise SystemExit(f"export: event {record['seq']} follows {len(hashes)}")
            hashes.append(bytes.fromhex(record["hash"]))
        elif kind == "checkpoint":
            check_signature(key, key_id, record)
            cp = record["checkpoint"]
            want_previous = (
                "0" * 64 if previous_cp is None else hashlib.sha256(canonical(previous_cp)).hexdigest()
            )
            if cp["previous"] != want_previous:
                raise SystemExit(f"export: checkpoint {cp['index']} does not chain")
            if cp["tree_size"] != len(hashes):
                raise SystemExit(f"export: checkpoint {cp['index']} is out of place")
            if root([leaf(h) for h in hashes]).hex() != cp["root"]:
                raise SystemExit(f"export: checkpoint {cp['index']} root differs")
            previous_cp, checkpoints = cp, checkpoints + 1
        elif kind == "event_text":
            seq = record["seq"]
            before = bytes(32) if seq == 1 else hashes[seq - 2]
            if sha256(before, record["event"].encode()) != hashes[seq - 1]:
                raise SystemExit(f"export: event {seq}'s text does not hash in its place")
    if not checkpoints or previous_cp["tree_size"] != len(hashes):
        raise SystemExit("export: events not covered by a checkpoint")
    print(f"export: {len(hashes)} events, {checkpoints} checkpoints")


def main():
    key_file, proof_file, export_file = sys.argv[1:4]
    with open(key_file, "rb") as f:
        key = load_pem_public_key(f.read())
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
    with open(proof_file) as f:
        verify_proof(key, key_id, json.load(f))
    with open(export_file) as f:
        verify_export(key, key_id, [l for l in f if l.strip()])
    print("independent verification: OK")


if __name__ == "__main__":
    main()

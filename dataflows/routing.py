"""Keys for the item stage that spread its shards evenly over Bytewax workers.

Bytewax 0.21.1 sends a keyed item to worker ``hash(key) % workers``, where ``hash`` is
Rust's ``DefaultHasher`` (SipHash-1-3 with zero keys) over the key string followed by a
0xFF byte. With the plain keys ``"0"`` .. ``"7"``, 6 of the 8 item shards go to the same
worker of two (as :func:`bytewax_key_hash` predicts). :func:`shard_keys`
picks, for shard ``s`` of ``n``, a key whose hash is ``s`` modulo ``n``: with any worker
count that divides ``n`` every worker owns the same number of shards.

Only the balance depends on this: routing is Bytewax's own, so if its hash ever differed,
the outputs would stay exactly the same and only the load would be uneven.

>>> [bytewax_key_hash(k) % 2 for k in "0123"]
[1, 1, 1, 1]
>>> [bytewax_key_hash(k) % 8 for k in shard_keys(8)]
[0, 1, 2, 3, 4, 5, 6, 7]
"""

from __future__ import annotations

from functools import cache

_MASK = (1 << 64) - 1


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _MASK


def _round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _MASK
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _MASK
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _MASK
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return v0, v1, v2, v3


def siphash13(data: bytes) -> int:
    """SipHash-1-3 of ``data`` with a zero key (what Rust's ``DefaultHasher::new()`` computes)."""
    v0, v1, v2, v3 = 0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261, 0x7465646279746573
    n = len(data)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 ^= m
    last = ((n & 0xFF) << 56) | int.from_bytes(data[end:], "little")
    v3 ^= last
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 ^= last
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def bytewax_key_hash(key: str) -> int:
    """The hash Bytewax routes a state key by (``Hash for str`` writes the bytes, then 0xFF)."""
    return siphash13(key.encode() + b"\xff")


@cache
def shard_keys(n: int) -> tuple[str, ...]:
    """One key per shard, ``"item-S"`` or ``"item-S.J"``, with hash ≡ S (mod n)."""
    keys = []
    for s in range(n):
        key, j = f"item-{s}", 0
        while bytewax_key_hash(key) % n != s:
            j += 1
            key = f"item-{s}.{j}"
        keys.append(key)
    return tuple(keys)

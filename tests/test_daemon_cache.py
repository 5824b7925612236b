"""The daemon's result cache on its own: lookups mark use, eviction drops the least recent."""

from __future__ import annotations

import os

from tressel.daemon.cache import ResultCache, cache_key


def put(cache: ResultCache, key: str, size: int, used_ns: int):
    path = cache.path(key, "usdc")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, ns=(used_ns, used_ns))
    return path


def test_evict_removes_least_recently_used_first_and_never_the_kept_layer(tmp_path):
    cache = ResultCache(tmp_path / "cache")
    keys = [cache_key(f"{i:064x}", "b" * 64, {"steps": 1}, {}, i, "usdc") for i in range(4)]
    old, mid, new, kept = (put(cache, k, 100, (i + 1) * 10**9) for i, k in enumerate(keys))
    assert cache.usage() == (4, 400)

    assert cache.lookup(keys[0], "usdc") == old  # using it makes it the most recent
    assert old.stat().st_mtime_ns > kept.stat().st_mtime_ns
    assert cache.evict(250) == [mid, new]
    assert cache.usage() == (2, 200)
    assert cache.lookup(keys[1], "usdc") is None

    # The layer just written stays even when it alone is over the limit.
    assert cache.evict(50, keep=kept) == [old]
    assert cache.entries() == [kept]
    assert cache.evict(1000) == []

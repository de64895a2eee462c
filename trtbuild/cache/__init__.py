"""The local content-addressed cache: file digests with a stat cache, and the store of stage artifacts.

What ``trtbuild compile`` uses::

    store = Store.open(args.cache_dir)            # --cache-dir, $TRTBUILD_CACHE_DIR, user cache dir
    path = store.get(stage.name, stage.key)       # cached artifact directory, or None
    path = store.put(stage.name, stage.key, build_into)   # build_into(dir) writes the artifact

Nothing here does I/O at import.
"""

from trtbuild.cache.digests import StatCache, digest_tree, file_digest
from trtbuild.cache.entry import Problem
from trtbuild.cache.store import CacheEntry, Store, resolve_cache_dir

__all__ = ["CacheEntry", "Problem", "StatCache", "Store", "digest_tree", "file_digest", "resolve_cache_dir"]

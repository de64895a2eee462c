"""`trtbuild cache ls|verify|gc`: inspect, check and trim the local store of stage artifacts.

The cache directory is ``--cache-dir``, else ``$TRTBUILD_CACHE_DIR``, else the user cache directory.
``verify`` exits 4 when an entry's files no longer match its manifest (re-run it with ``--remove`` to drop
those entries so the next compile rebuilds them).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Any

from trtbuild.commands.common import Args

EXIT_CORRUPT = 4


def _store(args: Args) -> Any:
    from trtbuild.cache.store import Store

    return Store.open(args.cache_dir)


def _dump(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _when(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def cmd_ls(args: Args) -> int:
    from trtbuild.canon import format_bytes as format_size

    store = _store(args)
    entries = store.entries()
    leftovers = store.leftovers()
    if args.json:
        _dump({"cache_dir": str(store.cache_dir), "entries": [e.to_json() for e in entries],
               "total_bytes": sum(e.size for e in entries), "leftovers": [str(p) for p in leftovers]})
        return 0
    print(f"cache: {store.cache_dir}")
    if not entries:
        print("  (empty)")
    else:
        print(f"  {'STAGE':<11} {'KEY':<16} {'SIZE':>10} {'FILES':>6}  LAST USED")
        for e in entries:
            print(f"  {e.stage:<11} {e.key[:16]:<16} {format_size(e.size):>10} {len(e.manifest.files):>6}  "
                  f"{_when(e.last_used)}")
        print(f"  {len(entries)} entries, {format_size(sum(e.size for e in entries))}")
    if leftovers:
        print(f"  {len(leftovers)} leftover(s) of interrupted builds (removed by `trtbuild cache gc`)")
    return 0


def cmd_verify(args: Args) -> int:
    store = _store(args)
    problems = store.verify()
    removed: list[str] = []
    if args.remove:
        for stage, key in sorted({(p.stage, p.key) for p in problems}):
            if store.remove(stage, key):
                removed.append(f"{stage}/{key}")
    checked = len(store.entries()) + len(removed)
    if args.json:
        _dump({"cache_dir": str(store.cache_dir), "ok": not problems, "entries_checked": checked,
               "problems": [{"stage": p.stage, "key": p.key, "path": p.path, "kind": p.kind,
                             "detail": p.detail} for p in problems],
               "removed": removed})
    else:
        for p in problems:
            print(p.format(), file=sys.stderr)
        for r in removed:
            print(f"removed {r}", file=sys.stderr)
        state = "ok" if not problems else f"{len({(p.stage, p.key) for p in problems})} corrupt entries"
        print(f"verified {checked} entries in {store.cache_dir}: {state}")
    return EXIT_CORRUPT if problems else 0


def cmd_gc(args: Args) -> int:
    from trtbuild.cache.gc import parse_duration, parse_size
    from trtbuild.canon import format_bytes as format_size

    older = parse_duration(args.older_than) if args.older_than else None
    max_bytes = parse_size(args.max_size) if args.max_size else None
    store = _store(args)
    report = store.gc(keep=args.keep, older_than=older, max_bytes=max_bytes, dry_run=args.dry_run)
    if args.json:
        _dump(report.to_json())
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for e in report.removed:
        print(f"{verb} {e.stage}/{e.key[:16]} ({format_size(e.size)}, last used {_when(e.last_used)})")
    for p in report.leftovers:
        print(f"{verb} leftover {p}")
    for k in report.skipped_locked:
        print(f"kept {k}: a build of it is running", file=sys.stderr)
    print(f"{verb} {len(report.removed)} entries ({format_size(report.freed_bytes)}) and "
          f"{len(report.leftovers)} leftovers; {format_size(report.remaining_bytes)} remain")
    if older is None and max_bytes is None:
        print("note: without --older-than or --max-size only leftovers of interrupted builds are removed")
    return 0

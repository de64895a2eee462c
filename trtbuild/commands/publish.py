"""`trtbuild publish DIR oci://...` and `trtbuild pull oci://... DIR`.

Exit codes come from ``trtbuild.cli``: 0 ok, 2 usage, 5 publish/pull failed or refused. Progress goes to
stderr, the result to stdout (``--json`` for machines). Credentials come from the environment or the docker
config and are never printed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from trtbuild.commands.common import Args

_EVENT_WORDS = {"blob-uploaded": "uploaded", "blob-resumed": "resumed", "blob-exists": "already there", "tag-set": "tagged",
                "tag-unchanged": "tag unchanged", "blob-downloaded": "verified"}


def _need_requests() -> None:
    from trtbuild.errors import UsageError

    try:
        import requests  # noqa: F401
    except ImportError:
        raise UsageError("publishing needs the `publish` extra: pip install 'trtbuild[publish]'") from None


def _progress(quiet: bool = False) -> Any:
    from trtbuild.canon import format_bytes as format_size
    from trtbuild.progress import Progress

    progress = Progress(enabled=not quiet)

    def on_event(e: Any) -> None:
        size = f" ({format_size(e.size)})" if e.kind.startswith("blob") else ""
        progress.log(f"  {_EVENT_WORDS.get(e.kind, e.kind):>14}  {e.name}{size}")

    return on_event


def cmd_publish(args: Args) -> int:
    from trtbuild.cache.digests import StatCache
    from trtbuild.cache.store import resolve_cache_dir
    from trtbuild.canon import format_bytes as format_size
    from trtbuild.errors import UsageError

    _need_requests()
    from trtbuild.registry import client_for, parse_annotations, parse_ref, publish_artifact

    src = Path(args.dir)
    if not src.is_dir():
        raise UsageError(f"{src}: not a directory")
    ref = parse_ref(args.ref, require_tag=True)
    cache_dir = resolve_cache_dir(args.cache_dir)
    client = client_for(ref, plain_http=args.plain_http, insecure=args.insecure, upload_state_dir=cache_dir / "uploads")
    stat_cache = StatCache.in_dir(cache_dir)
    result = publish_artifact(src, ref, client=client, annotations=parse_annotations(args.annotation),
                              tag_by_fingerprint=not args.no_fingerprint_tag, stat_cache=stat_cache,
                              on_event=_progress(args.quiet))
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        what = (f"uploaded {len(result.uploaded)} blob(s), {format_size(result.bytes_uploaded)}"
                if result.uploaded else "nothing uploaded (the registry had every blob)")
        print(f"published {result.pinned}")
        print(f"  tags: {', '.join(result.tags)}; {what}")
    return 0


def cmd_pull(args: Args) -> int:
    _need_requests()
    from trtbuild.registry import client_for, parse_ref, pull_artifact

    ref = parse_ref(args.ref)
    client = client_for(ref, plain_http=args.plain_http, insecure=args.insecure)
    result = pull_artifact(ref, Path(args.dir), client=client, force=args.force,
                           on_event=_progress(args.quiet))
    if args.json:
        json.dump(result.to_json(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"pulled {ref} ({result.digest}) into {result.dest}: {len(result.files)} layer(s), all verified")
    return 0

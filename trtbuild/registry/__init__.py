"""OCI publishing: a build output directory ⇄ an OCI artifact in a registry.

What ``trtbuild compile --publish`` uses::

    ref = parse_ref(recipe.publish.registry + ":" + tag)          # oci://host[:port]/ns/name:tag
    client = client_for(ref, plain_http=args.plain_http, insecure=args.insecure)
    if args.skip_published and adopt_published(ref, fp, client=client):
        ...                       # already published: tag moved to it, nothing to build
    result = publish_artifact(out_dir, ref, client=client, annotations=recipe.publish.annotations,
                              stat_cache=store.stat_cache())
    print(result.pinned)

Nothing here does I/O at import; ``requests`` (the ``publish`` extra) is the only third-party import.
"""

from trtbuild.registry.artifact import ARTIFACT_INFO_NAME, ArtifactInfo, fingerprint_tag, parse_annotations
from trtbuild.registry.auth import Credentials, resolve_credentials
from trtbuild.registry.client import RegistryClient
from trtbuild.registry.publish import (
    PublishEvent,
    PublishResult,
    PullResult,
    adopt_published,
    client_for,
    publish_artifact,
    published_digest,
    pull_artifact,
)
from trtbuild.registry.reference import OciRef, parse_ref

__all__ = [
    "ARTIFACT_INFO_NAME", "ArtifactInfo", "Credentials", "OciRef", "PublishEvent", "PublishResult",
    "PullResult", "RegistryClient", "adopt_published", "client_for", "fingerprint_tag", "parse_annotations", "parse_ref",
    "publish_artifact", "published_digest", "pull_artifact", "resolve_credentials",
]

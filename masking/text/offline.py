"""Keep presidio's dependencies off the network.

presidio's own e-mail recognizer asks tldextract to validate domains, and
tldextract's default extractor downloads the public-suffix list on first use.
Our recognizers never call it, but presidio's predefined ones do (the
benchmark runs them for comparison), so before anything imports presidio the
module-level extractor is replaced by one that reads only the snapshot
bundled in the tldextract wheel: no URLs, no cache directory.
"""

from __future__ import annotations

import os

# Read by tldextract when its module-level extractor is built at import.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import tldextract
import tldextract.tldextract

OFFLINE_EXTRACTOR = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
)
# tldextract.extract() looks this global up at call time.
tldextract.tldextract.TLD_EXTRACTOR = OFFLINE_EXTRACTOR


def ensure_offline() -> None:
    """Idempotent; importing this module already did the work."""
    tldextract.tldextract.TLD_EXTRACTOR = OFFLINE_EXTRACTOR

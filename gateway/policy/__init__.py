"""Policy: Rego bundles, the embedded engine, bundle checks, and the cached decider."""

from gateway.policy.bundle import BundleError, PolicyBundle, PolicyProblem, load_bundle
from gateway.policy.engine import ENTRYPOINT, PolicyEngine, RegorusEngine

__all__ = [
    "ENTRYPOINT",
    "BundleError",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyProblem",
    "RegorusEngine",
    "load_bundle",
]

"""Names Kubernetes itself puts on objects: the deployment controller's and kubectl's.

The product's own labels and the wider ecosystem's names (GPU feature discovery, Kueue, KServe)
live in ``backend.conventions``; these are the ones defined by Kubernetes and kubectl.
"""

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
# Written by the long-removed extensions/v1beta1 rollback; still never copied between objects.
DEPRECATED_ROLLBACK_TO_ANNOTATION = "deprecated.deployment.rollback.to"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"

# The annotations that belong to one object's revision bookkeeping and never travel between a
# Deployment and its ReplicaSets: the controller does not copy them onto a ReplicaSet, and
# ``kubectl rollout undo`` keeps the Deployment's own (``annotationsToSkip`` in both).
BOOKKEEPING_ANNOTATIONS = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO_ANNOTATION,
    }
)

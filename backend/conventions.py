"""Well-known names of the Kubernetes objects the product reads, and the sandbox writes.

They are facts about the ecosystem (GPU feature discovery, Kueue, KServe) and this product's own
tenancy and release labels; one definition keeps the sandbox and the backend in agreement. Names
Kubernetes itself defines (the deployment controller's annotations) are in
``backend.k8s.annotations``.
"""

GPU_RESOURCE = "nvidia.com/gpu"  # the device plugin's extended resource
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set on nodes by GPU feature discovery
TENANT_LABEL = "opsconsole.io/tenant"  # on namespaces and ClusterQueues
MODEL_LABEL = "opsconsole.io/model"  # on model releases
STAGE_LABEL = "opsconsole.io/stage"  # staging | production
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # a workload's LocalQueue
KUEUE_GATE = "kueue.x-k8s.io/admission"  # scheduling gate until Kueue admits the pod
ISVC_LABEL = "serving.kserve.io/inferenceservice"  # on an InferenceService's pods
SLO_P99_ANNOTATION = "opsconsole.io/slo-p99-seconds"  # a model release's p99 latency objective

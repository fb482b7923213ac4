"""Well-known names of the Kubernetes objects the product reads, and the sandbox writes.

They are facts about the ecosystem (GPU feature discovery, Kueue, KServe, the deployment
controller) and this product's own tenancy labels; one definition keeps the sandbox and the backend
in agreement.
"""

GPU_RESOURCE = "nvidia.com/gpu"  # the device plugin's extended resource
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"  # set on nodes by GPU feature discovery
TENANT_LABEL = "opsconsole.io/tenant"  # on namespaces and ClusterQueues
MODEL_LABEL = "opsconsole.io/model"  # on model releases
STAGE_LABEL = "opsconsole.io/stage"  # staging | production
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"  # a workload's LocalQueue
KUEUE_GATE = "kueue.x-k8s.io/admission"  # scheduling gate until Kueue admits the pod
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"
ISVC_LABEL = "serving.kserve.io/inferenceservice"  # on an InferenceService's pods

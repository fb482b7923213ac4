"""Kubernetes' own semantics, as the product relies on them and real clients implement them.

Quantities, label selectors, generated names, the deployment controller's annotations and the
client side of ``kubectl rollout undo``: pure functions over plain dicts, checked against real
clients where one exists. The sandbox (a fake cluster) may import this package; nothing here
imports the sandbox.
"""

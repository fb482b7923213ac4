"""The change path: the only code that writes to Kubernetes, and every write's audit trail."""

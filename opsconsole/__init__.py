"""opsconsole: a terminal console for the operators of a shared GPU platform on Kubernetes."""

__version__ = "0.1.0"

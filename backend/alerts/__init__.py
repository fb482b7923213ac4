"""Alerts: rules over the fleet model with Prometheus's ``for:`` semantics, and their history."""

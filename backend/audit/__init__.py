"""The audit log: hash-chained records of every change, and their verification."""

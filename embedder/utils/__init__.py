"""Utilities below every package: progress output, atomic file writes, lazy exports."""

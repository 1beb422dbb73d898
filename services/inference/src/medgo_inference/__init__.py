"""MedGo inference service."""
